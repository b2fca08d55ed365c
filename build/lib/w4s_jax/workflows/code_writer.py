"""For code tasks: write the function, check it on the public tests, repair it while they fail."""

import re


def entry_point_of(task):
    names = re.findall(r"def\s+([A-Za-z_]\w*)\s*\(", task)
    return names[-1] if names else "solution"


def solver(agent, task):
    entry_point = entry_point_of(task)
    response = agent.call_json_format_llm(
        messages=[{"role": "user", "content": f"# Your Task:\n{task}"}],
        temperature=0.0,
        agent_role="Expert Python Programmer",
        return_dict_keys=["reasoning", "code"],
        instructions=(f"Write a complete, self-contained python implementation of `{entry_point}` "
                      "(imports included). Put only the code in 'code'."),
    )[0]
    code = response.get("code", "")
    code = agent.extract_code_block(code, entry_point) or code
    checked = agent.test_on_public_test(task, code, entry_point, test_loop=2)
    return {"answer": checked["solution"]}
