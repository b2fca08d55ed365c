"""Child-side confinement layers, applied by the worker to itself before any untrusted code runs.

Standard library only (the worker runs under `python -I -S`). Every layer is tried, a layer the OS
refuses is skipped, and the names of the layers that took effect are reported to the parent so a
run records how strongly it was confined. See docs/sandbox_threat_model.md for what each one stops.
"""

from __future__ import annotations

import os
import platform
import resource
import struct
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND = 0x1, 0x2, 0x4, 0x20, 0x1000
MS_REC, MS_PRIVATE = 0x4000, 0x40000
MNT_DETACH = 2
PR_SET_NO_NEW_PRIVS = 38
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2

# Audit events refused outright: processes, signals, sockets, native code, limit changes, heap walks.
BLOCKED_EVENT_PREFIXES = (
    "socket.", "subprocess.", "os.system", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn",
    "os.exec", "os.kill", "os.killpg", "signal.pthread_kill", "pty.", "ctypes.", "resource.setrlimit",
    "resource.prlimit", "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys.addaudithook",
    "webbrowser.", "urllib.", "http.", "ftplib.", "smtplib.", "imaplib.", "poplib.", "nntplib.",
    "telnetlib.", "sqlite3.", "shutil.chown", "os.chown", "os.setxattr", "os.removexattr",
    # a new interpreter starts without this hook (the subinterpreter escape), and hooks are only
    # cleared at finalization: both refused, as is listing other threads' frames
    "cpython.PyInterpreterState_New", "cpython._PySys_ClearAuditHooks", "sys._current_frames",
)
# sys._getframe is refused with AttributeError, which namedtuple, typing and enum already catch
# (they fall back to no caller module), so common code keeps working.
FRAME_EVENTS = frozenset({"sys._getframe"})
# Modules whose import would give a way around the hooks (raw fork/exec without an audit event,
# native calls). Sockets are stopped by the socket.* events and the empty network namespace.
BLOCKED_IMPORTS = frozenset({
    "ctypes", "_ctypes", "_posixsubprocess", "subprocess", "multiprocessing", "_multiprocessing",
    "_posixshmem", "pty",
})
# The only C modules (built-in or extension) a worker may hold: any other is unloaded at confinement.
# Those its preloads (worker.PRELOADED) load are there; afterwards no C module can be loaded at all
# (the hook refuses importing one outside this list, and `_imp`'s loaders of built-in and extension
# modules are replaced, so `_imp.create_dynamic` cannot be called directly either).
# Left out on purpose: _xxsubinterpreters/_xxinterpchannels/_interpreters (a new interpreter has no
# audit hook), _ctypes, _posixsubprocess, _multiprocessing, _posixshmem, mmap, fcntl, termios,
# _testcapi and the other test modules, _sqlite3, _ssl, _tkinter, _curses, readline.
ALLOWED_C_MODULES = frozenset({
    "_abc", "_ast", "_asyncio", "_bisect", "_blake2", "_bz2", "_codecs", "_codecs_cn", "_codecs_hk",
    "_codecs_iso2022", "_codecs_jp", "_codecs_kr", "_codecs_tw", "_collections", "_contextvars", "_csv",
    "_datetime", "_decimal", "_elementtree", "_functools", "_hashlib", "_heapq", "_imp", "_io", "_json",
    "_locale", "_lsprof", "_lzma", "_md5", "_multibytecodec", "_opcode", "_operator", "_pickle", "_queue",
    "_random", "_sha1", "_sha256", "_sha3", "_sha512", "_signal", "_socket", "_sre", "_stat", "_statistics",
    "_string", "_struct", "_symtable", "_thread", "_tokenize", "_tracemalloc", "_typing", "_uuid",
    "_warnings", "_weakref", "_zoneinfo", "array", "atexit", "binascii", "builtins", "cmath", "errno",
    "faulthandler", "gc", "itertools", "marshal", "math", "posix", "pwd", "pyexpat", "resource", "select",
    "sys", "time", "unicodedata", "zlib",
})
# Audit events that take one or two paths and change the file system: allowed inside the workdir only.
PATH_WRITE_EVENTS = frozenset({
    "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.link", "os.symlink",
    "os.truncate", "os.utime", "os.chflags", "os.lchflags", "shutil.rmtree", "shutil.copyfile",
    "shutil.copymode", "shutil.copystat", "shutil.copytree", "shutil.move", "shutil.make_archive",
    "shutil.unpack_archive", "os.chdir",
})
PATH_READ_EVENTS = frozenset({"os.listdir", "os.scandir", "glob.glob", "glob.glob/2", "os.walk"})
READABLE_DEVICES = frozenset({"/dev/null", "/dev/urandom", "/dev/random", "/dev/zero"})
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def apply_rlimits(*, cpu_seconds: int, memory_mb: int, max_file_mb: int, max_open_files: int,
                  max_tasks: int) -> list[str]:
    """Sets soft = hard for every limit so the worker cannot raise any of them again."""
    wanted = {
        "RLIMIT_CPU": (cpu_seconds, cpu_seconds + 1),
        "RLIMIT_AS": (memory_mb << 20, memory_mb << 20),
        "RLIMIT_FSIZE": (max_file_mb << 20, max_file_mb << 20),
        "RLIMIT_NOFILE": (max_open_files, max_open_files),
        "RLIMIT_CORE": (0, 0),
        "RLIMIT_NPROC": (max_tasks, max_tasks),
    }
    applied = []
    for name, (soft, hard) in wanted.items():
        try:
            resource.setrlimit(getattr(resource, name), (soft, hard))
            applied.append(name)
        except (ValueError, OSError):
            continue
    return applied


# seccomp: syscalls refused by the kernel from the worker on, whatever Python-level code runs (a
# subinterpreter, a C extension, crafted bytecode). Per architecture: (AUDIT_ARCH, clone, clone3,
# refused with EPERM). fork/vfork/clone without CLONE_THREAD (new processes), exec, ptrace and
# cross-process memory, namespaces and mounts, and kernel interfaces a worker never needs. clone3 gets
# ENOSYS so glibc falls back to clone, whose flags the filter can read (threads stay allowed).
_SECCOMP_ARCHES = {
    "x86_64": (0xC000003E, 56, 435, (57, 58, 59, 322, 101, 310, 311, 272, 308, 165, 166, 155, 161, 321,
                                     298, 323, 250, 248, 249, 246, 175, 313, 425)),
    "aarch64": (0xC00000B7, 220, 435, (221, 281, 117, 270, 271, 97, 268, 40, 39, 41, 51, 280, 241, 282,
                                       219, 217, 218, 104, 105, 273, 425)),
}
_X32_SYSCALL_BIT = 0x40000000
CLONE_THREAD = 0x00010000
_BPF_LD_W_ABS, _BPF_JEQ_K, _BPF_JGE_K, _BPF_JSET_K, _BPF_RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_RET_ALLOW, _RET_KILL_PROCESS, _RET_ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
_EPERM, _ENOSYS = 1, 38


def seccomp_program(machine: str) -> bytes | None:
    """The BPF filter (packed `struct sock_filter`s) for this machine, None where none is defined."""
    if machine not in _SECCOMP_ARCHES:
        return None
    arch, clone, clone3, refused = _SECCOMP_ARCHES[machine]

    def op(code: int, k: int, jt: int = 0, jf: int = 0) -> tuple:
        return code, jt, jf, k

    program = [op(_BPF_LD_W_ABS, 4), op(_BPF_JEQ_K, arch, 1, 0), op(_BPF_RET_K, _RET_KILL_PROCESS),
               op(_BPF_LD_W_ABS, 0)]
    if machine == "x86_64":  # the x32 ABI numbers every syscall anew: refuse it whole
        program += [op(_BPF_JGE_K, _X32_SYSCALL_BIT, 0, 1), op(_BPF_RET_K, _RET_ERRNO | _EPERM)]
    for number in refused:
        program += [op(_BPF_JEQ_K, number, 0, 1), op(_BPF_RET_K, _RET_ERRNO | _EPERM)]
    program += [op(_BPF_JEQ_K, clone3, 0, 1), op(_BPF_RET_K, _RET_ERRNO | _ENOSYS)]
    program += [op(_BPF_JEQ_K, clone, 0, 3), op(_BPF_LD_W_ABS, 16), op(_BPF_JSET_K, CLONE_THREAD, 1, 0),
                op(_BPF_RET_K, _RET_ERRNO | _EPERM), op(_BPF_RET_K, _RET_ALLOW)]
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in program)


def install_seccomp(ctypes, libc) -> bool:
    """Installs the filter on this (still single-threaded) process; threads started later inherit it.
    Needs no_new_privs. False where the machine has no filter defined or the kernel refuses it."""
    program = seccomp_program(platform.machine())
    if program is None:
        return False
    buffer = ctypes.create_string_buffer(program, len(program))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(program) // 8, ctypes.addressof(buffer))
    return libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) == 0


def _libc():
    import ctypes  # loaded only for the privileged set-up, then purged

    return ctypes, ctypes.CDLL(None, use_errno=True)


def _minimal_root(libc, workdir: str, options: bytes, read_only_dirs: tuple[str, ...]) -> bool:
    """Builds a root holding only the read-only standard library, a few devices and the capped
    workdir (at their usual paths), in a small tmpfs mounted over the workdir, and chroots into it:
    the rest of the host's files (data, hidden tests, caches, /proc, /etc) no longer exist."""
    root = workdir
    if libc.mount(b"tmpfs", root.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=1m,nr_inodes=512,mode=0755") != 0:
        return False
    try:
        for source in read_only_dirs:
            target = (root + source).encode()
            os.makedirs(target, mode=0o755, exist_ok=True)
            if libc.mount(source.encode(), target, None, MS_BIND | MS_REC, None) != 0 or libc.mount(
                    None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None) != 0:
                raise OSError(f"bind-mounting {source} read-only failed")
        os.makedirs(root + "/dev", mode=0o755)
        for device in ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"):
            with open(root + device, "w"):
                pass
            if libc.mount(device.encode(), (root + device).encode(), None, MS_BIND, None) != 0:
                raise OSError(f"bind-mounting {device} failed")
        os.makedirs(root + workdir, mode=0o755)
        if libc.mount(b"tmpfs", (root + workdir).encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options) != 0:
            raise OSError("mounting the workdir tmpfs failed")
        if libc.mount(None, root.encode(), None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None) != 0:
            raise OSError("remounting the new root read-only failed")
        os.chroot(root)
        os.chdir(workdir)
        return True
    except OSError:
        libc.umount2(root.encode(), MNT_DETACH)
        return False


def _private_filesystem(libc, workdir: str, uid: int, workdir_mb: int, read_only_dirs: tuple[str, ...]) -> list[str]:
    """In a fresh mount namespace: a minimal chroot (see _minimal_root) when it can be built; else the
    workdir becomes a size-capped tmpfs and / and /dev/shm read-only."""
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return []  # without private propagation a mount here could leak to the host: do nothing
    options = f"size={workdir_mb}m,nr_inodes=4096,mode=0700,uid={uid},gid={uid}".encode()
    if _minimal_root(libc, workdir, options, read_only_dirs):
        return ["chroot_minimal_root", f"workdir_tmpfs={workdir_mb}m", "readonly_root"]
    layers = []
    if libc.mount(b"tmpfs", workdir.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options) == 0:
        os.chdir(workdir)
        layers.append(f"workdir_tmpfs={workdir_mb}m")
    if libc.mount(None, b"/", None, MS_REMOUNT | MS_BIND | MS_RDONLY, None) == 0:
        layers.append("readonly_root")
    if libc.mount(b"tmpfs", b"/dev/shm", b"tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, b"size=4k,nr_inodes=2") == 0:
        layers.append("readonly_shm")
    return layers


def unshare_and_drop(uid: int | None, workdir_mb: int, read_only_dirs: tuple[str, ...]) -> list[str]:
    """New mount/network/IPC/UTS namespaces, a private capped workdir, then a fresh unprivileged uid,
    no-new-privs, not dumpable, and the seccomp filter (no new process, no exec).

    As root the namespaces need no user namespace; without root a user namespace is tried first
    (it needs unprivileged user namespaces enabled) and the mount layers are skipped. A refused step
    is skipped.
    """
    layers: list[str] = []
    try:
        ctypes, libc = _libc()
    except OSError:
        return layers
    is_root = os.geteuid() == 0
    flags = CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    flags |= CLONE_NEWNS if is_root and uid is not None else CLONE_NEWUSER
    if libc.unshare(flags) == 0:
        layers += ["netns", "ipcns", "utsns"]
        if flags & CLONE_NEWNS:
            layers += ["mountns", *_private_filesystem(libc, os.getcwd(), uid, workdir_mb, read_only_dirs)]
        else:
            layers.append("userns")
    if is_root and uid is not None:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            layers.append(f"uid={uid}")
        except OSError:
            pass
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
        layers.append("no_new_privs")
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0:
        layers.append("not_dumpable")
    if install_seccomp(ctypes, libc):
        layers.append("seccomp_no_fork_exec")
    del ctypes, libc
    for name in [m for m in sys.modules if m == "ctypes" or m.startswith(("ctypes.", "_ctypes"))]:
        del sys.modules[name]
    return layers


def c_module_names(stdlib: str) -> frozenset[str]:
    """Every C module this interpreter could load: built-ins and the extensions in lib-dynload."""
    try:
        extensions = {name.split(".")[0] for name in os.listdir(os.path.join(stdlib, "lib-dynload"))
                      if name.endswith(".so")}
    except OSError:
        extensions = set()
    return frozenset(sys.builtin_module_names) | frozenset(extensions)


def confine_c_modules(c_modules: frozenset[str]) -> None:
    """Unloads every loaded C module outside ALLOWED_C_MODULES and replaces `_imp`'s loaders of
    built-in and extension modules, so that from now on no C module can be created, whether through
    `import` or by calling `_imp` directly. Called after the last use of ctypes. (Loading the rest of
    the list up front would cost about 160 ms per worker and pull in asyncio, whose subprocess
    support holds `_posixsubprocess.fork_exec`.)"""
    for name in [m for m in sys.modules if m in c_modules and m not in ALLOWED_C_MODULES]:
        del sys.modules[name]
    import _imp

    def refuse(spec, *args):
        raise ImportError(f"sandbox: C module {getattr(spec, 'name', spec)!r} cannot be loaded in a confined "
                          "worker (only those loaded before confinement are available)")

    _imp.create_builtin = _imp.create_dynamic = refuse


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root + os.sep) for root in roots)


def install_audit_hook(workdir: str, read_roots: tuple[str, ...], c_modules: frozenset[str] = frozenset()) -> None:
    """Refuses, from now on, file access outside `workdir` (reads also under `read_roots`), every
    event in BLOCKED_EVENT_PREFIXES / FRAME_EVENTS / BLOCKED_IMPORTS, and imports of the C modules in
    `c_modules` that are not in ALLOWED_C_MODULES. The hook cannot be removed once added."""
    workdir = os.path.realpath(workdir)
    write_roots = (workdir,)
    readable = (workdir, *(os.path.realpath(r) for r in read_roots))
    realpath, fsdecode = os.path.realpath, os.fsdecode
    blocked_prefixes, blocked_imports = BLOCKED_EVENT_PREFIXES, BLOCKED_IMPORTS
    refused_c_modules = c_modules - ALLOWED_C_MODULES

    def resolve(path) -> str | None:
        if isinstance(path, int):
            return None
        try:
            return realpath(fsdecode(path))
        except (TypeError, ValueError):
            return "\0invalid"

    def deny(what: str) -> None:
        raise PermissionError(f"sandbox: {what} is not allowed in a workflow")

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (*tuple(args), None, None, 0)[:3]
            target = resolve(path)
            if target is None:
                return
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(
                isinstance(flags, int) and flags & WRITE_FLAGS
            )
            if writing and not _under(target, write_roots) and target != "/dev/null":
                deny(f"writing {target} (outside the working directory)")
            if not writing and not _under(target, readable) and target not in READABLE_DEVICES:
                deny(f"reading {target} (outside the working directory)")
        elif event == "import":
            name = args[0] if args else ""
            if isinstance(name, str) and name.split(".")[0] in blocked_imports:
                deny(f"import of {name}")
            if isinstance(name, str) and name in refused_c_modules:
                deny(f"import of the C module {name} (not on the allow-list)")
        elif event in FRAME_EVENTS:
            raise AttributeError(f"sandbox: {event} is not allowed in a workflow")
        elif event.startswith(blocked_prefixes):
            deny(event)
        elif event in PATH_WRITE_EVENTS:
            for arg in args[:2]:
                if isinstance(arg, (str, bytes, os.PathLike)):
                    target = resolve(arg)
                    if target is not None and not _under(target, write_roots):
                        deny(f"{event} on {target} (outside the working directory)")
        elif event in PATH_READ_EVENTS and args:
            target = resolve(args[0]) if isinstance(args[0], (str, bytes, os.PathLike)) else None
            if target is not None and not _under(target, readable):
                deny(f"{event} on {target} (outside the working directory)")

    sys.addaudithook(hook)
