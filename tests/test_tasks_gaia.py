"""GAIA: the validation release layout, the leaderboard's quasi-exact-match scorer on its edge cases,
the level filter, the refused test split, attachments and web search through the real sandbox, and
`w4s-jax eval` end to end."""

from __future__ import annotations

import asyncio
import http.server
import re
import threading
import urllib.parse

import pytest
from release_fixtures import gaia_rows, run_eval, write_gaia

from w4s_jax.sandbox import Sandbox, SandboxSettings
from w4s_jax.sandbox.attachments import AttachmentError, read_attachment_text
from w4s_jax.tasks import DataError, MissingData, get_task
from w4s_jax.tasks.gaia import question_scorer
from w4s_jax.w4s.scoring import executor_handler, sample_context
from w4s_jax.w4s.web_search import MAX_RESULT_BYTES, SearchError, http_search


@pytest.mark.parametrize(("answer", "gold", "right"), [
    # numbers: "$", "%" and "," removed, then float equality
    ("$1,000", "1000", True), ("1000%", "1000", True), ("3.0", "3", True), ("17", "17.0", True),
    ("one thousand", "1000", False), ("1000 dollars", "1000", False), ("", "0", False),
    # a gold with a comma is a list, even 1,000: "1000" has one element, the gold two
    ("1000", "1,000", False), ("1,000", "1,000", True),
    # lists: split on , and ; lengths must match, order matters, numbers as numbers
    ("apple, banana", "apple,banana", True), ("apple; banana", "apple, banana", True),
    ("Apple , BANANA", "apple, banana", True), ("banana, apple", "apple, banana", False),
    ("apple", "apple, banana", False), ("1, 2.0", "1, 2", True), ("$1, 2%", "1, 2", True),
    ("a.b, c", "ab, c", False),  # list items keep their punctuation
    # strings: no whitespace, no punctuation, lowercase
    ("Paris", "paris", True), ("Paris.", "paris", True), ("  New York ", "new york", True),
    ("NewYork", "New York", True), ("St. Louis!", "st louis", True), ("Pariss", "paris", False),
    (None, "None", True), (None, "5", False), (5, "5", True),
])
def test_question_scorer_edge_cases(answer, gold, right):
    assert question_scorer(answer, gold) is right


def test_validation_release_loads_with_levels_and_attachments(tmp_path):
    metadata = write_gaia(tmp_path)
    task = get_task("gaia")
    examples = {e.id: e for split in ("validate", "test") for e in task.load(split, tmp_path)}
    assert len(examples) == 10
    fruit = examples["made-up-01"]
    assert fruit.answer == "pear, plum" and fruit.meta["level"] == "2"
    assert fruit.meta["attachment"] == str((metadata.parent / "fruit.csv").resolve())
    assert fruit.question.endswith("Attached file: fruit.csv (its text: agent.read_attachment())")
    assert str(tmp_path) not in fruit.question  # the workflow never sees a host path
    assert "attachment" not in examples["made-up-00"].meta
    assert task.score("Pear,Plum", fruit) == 1.0 and task.score("pear", fruit) == 0.0
    level_3 = get_task("gaia", 0, "3")
    assert {e.meta["level"] for s in ("validate", "test") for e in level_3.load(s, tmp_path)} == {"3"}
    with pytest.raises(ValueError, match="unknown GAIA level '4'; known: 1, 2, 3"):
        get_task("gaia", 0, "4")


def test_the_test_split_has_no_public_answers_and_is_refused(tmp_path):
    rows = [dict(row, **{"Final answer": "?"}) for row in gaia_rows()]
    write_gaia(tmp_path / "only_test", "test", rows)
    with pytest.raises(MissingData, match="only GAIA's test split is there, and it has no public answers"):
        get_task("gaia").load("validate", tmp_path / "only_test")
    write_gaia(tmp_path / "mislabelled", "validation", rows)
    with pytest.raises(DataError, match=r"metadata.jsonl:\d+: 'Final answer' is '\?': this is GAIA's test split"):
        get_task("gaia").load("test", tmp_path / "mislabelled")


def test_an_attachment_outside_the_release_folder_is_refused(tmp_path):
    rows = gaia_rows()
    for row in rows:
        row["file_name"] = "../../../secret.txt"
    write_gaia(tmp_path, rows=rows)
    with pytest.raises(DataError, match=r"field 'file_name' '../../../secret.txt' must name a file in"):
        get_task("gaia").load("test", tmp_path)


WORKFLOW = '''
def solver(agent, task):
    try:
        text = agent.read_attachment()
    except Exception as error:
        text = type(error).__name__ + ": " + str(error)
    try:
        found = agent.web_search("fruit prices")
    except Exception as error:
        found = type(error).__name__ + ": " + str(error)
    return {"answer": {"attachment": text, "search": found}}
'''


def run_in_sandbox(examples, search=None, source=WORKFLOW):
    async def run():
        async with Sandbox(SandboxSettings(workers=3, sample_timeout_s=30.0), executor_handler(None, search)) as box:
            return await box.run_workflow(source, [e.question for e in examples], [e.id for e in examples],
                                          [sample_context(e) for e in examples])

    return asyncio.run(run())


def test_attachments_reach_the_workflow_as_text_and_web_search_is_a_catchable_error_offline(tmp_path):
    write_gaia(tmp_path)
    task = get_task("gaia")
    examples = {e.id: e for split in ("validate", "test") for e in task.load(split, tmp_path)}
    chosen = [examples[i] for i in ("made-up-01", "made-up-02", "made-up-00")]
    csv, png, none = run_in_sandbox(chosen)
    assert csv.error is None, csv.error
    assert csv.answer["attachment"] == "fruit,price\napple,1\npear,2\nplum,2\n"
    assert png.answer["attachment"].startswith("AttachmentError: attached file 'photo.png' is not a text file")
    assert none.answer["attachment"] == "AttachmentError: this sample has no attached file"
    for result in (csv, png, none):
        assert result.answer["search"].startswith("WebSearchUnavailable: agent.web_search: no search backend")
        assert result.executor_calls == 0  # no LLM call was made or billed

    async def search(query: str) -> str:
        return f"results for {query!r}"

    (proxied,) = run_in_sandbox([examples["made-up-03"]], search)
    assert proxied.answer == {"attachment": '{"pear": 2}', "search": "results for 'fruit prices'"}


def test_bad_calls_are_refused_before_anything_is_read_or_searched(tmp_path):
    write_gaia(tmp_path)
    (example,) = [e for e in get_task("gaia").load("test", tmp_path) if e.meta.get("attachment")][:1]
    searched = []

    async def search(query: str) -> str:
        searched.append(query)
        return "results"

    empty_query = ("def solver(agent, task):\n"
                   "    try:\n        agent.web_search('  ')\n"
                   "    except ValueError as error:\n        return {'answer': str(error)}\n")
    (result,) = run_in_sandbox([example], search, empty_query)
    assert result.answer.startswith("agent.web_search: query must be 1 to 2000 characters")
    forged = ("def solver(agent, task):\n"
              "    return {'answer': agent._call_parent('read_attachment', {'path': '/etc/passwd'})}\n")
    (result,) = run_in_sandbox([example], search, forged)
    assert result.error["type"] == "ProtocolError" and "unknown argument(s) ['path']" in result.error["message"]
    assert searched == []


def test_attachment_size_bound_and_missing_file(tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("x" * 101)
    assert read_attachment_text(str(big), max_bytes=101) == "x" * 101
    with pytest.raises(AttachmentError, match=re.escape("'big.txt' is 101 bytes, over the 100-byte limit")):
        read_attachment_text(str(big), max_bytes=100)
    with pytest.raises(AttachmentError, match=re.escape("'gone.csv' cannot be read")):
        read_attachment_text(str(tmp_path / "gone.csv"))


def test_eval_end_to_end_on_the_fixture(tmp_path):
    write_gaia(tmp_path / "data")
    examples = get_task("gaia").load("test", tmp_path / "data")
    table = {e.question: e.answer.upper() for e in examples}  # the scorer lowercases
    done, report = run_eval(tmp_path, "gaia", tmp_path / "data", "cot", table)
    assert done.returncode == 0, done.stderr[-3000:]
    assert report["num_samples"] == len(examples) == 8 and report["score"] == 1.0
    (tmp_path / "again").mkdir()
    missing, _ = run_eval(tmp_path / "again", "gaia", tmp_path / "absent", "cot", table)
    lines = [line for line in missing.stderr.splitlines() if line.startswith("w4s-jax eval:")]
    assert missing.returncode == 2 and len(lines) == 1 and "Traceback" not in missing.stderr
    assert lines[0].startswith(f"w4s-jax eval: configuration error: data_dir: task 'gaia': no data at "
                               f"{tmp_path / 'absent'}/gaia/2023/validation/metadata.jsonl (directory ")
    assert "--config.data_dir=DIR, a folder holding gaia/2023/validation/metadata.jsonl" in lines[0]


class SearchHandler(http.server.BaseHTTPRequestHandler):
    """A loopback search backend: `results for <q>`, HTTP 500 for "fail", a huge body for "huge"."""

    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("q", [""])[0]
        status, body = (500, b"down") if query == "fail" else (200, f"results for {query}".encode())
        if query == "huge":
            body = b"x" * (MAX_RESULT_BYTES * 3)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def search_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SearchHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/search"
    server.shutdown()


def test_http_search_backend(search_url):
    search = http_search(search_url)
    assert asyncio.run(search("pear price")) == "results for pear price"
    assert len(asyncio.run(search("huge"))) == MAX_RESULT_BYTES
    with pytest.raises(SearchError, match="search backend answered HTTP 500"):
        asyncio.run(search("fail"))
    with pytest.raises(SearchError, match="search backend unreachable"):
        asyncio.run(http_search("http://127.0.0.1:9/search")("x"))


def test_eval_proxies_web_search_to_the_configured_backend(tmp_path, search_url):
    write_gaia(tmp_path / "data")
    workflow = tmp_path / "searcher.py"
    workflow.write_text("def solver(agent, task):\n"
                        "    return {'answer': agent.web_search(task.split(':')[0])}\n")
    done, report = run_eval(tmp_path, "gaia", tmp_path / "data", str(workflow), {},
                            f"--config.search_url={search_url}", "--config.limit=2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert [s["answer"] for s in report["samples"]] == [f"results for Made-up question {e.id[-1]}"
                                                       for e in get_task("gaia").load("test", tmp_path / "data")[:2]]
    assert report["usage"]["calls"] == 0  # searches are not executor calls
