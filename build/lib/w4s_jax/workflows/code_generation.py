"""Program-aided solving: the executor writes `solution()`, the sandbox runs it (execute_code)."""


def solver(agent, task):
    messages = [{"role": "user", "content": f"# Your Task:\n{task}"}]
    response = agent.call_json_format_llm(
        messages=messages,
        temperature=0.0,
        agent_role="python programmer",
        return_dict_keys=["reasoning", "code"],
        instructions=("Write python code that defines solution() with no arguments and returns the final "
                      "answer. Put only the code in 'code'."),
    )[0]
    code = agent.extract_code_block(response.get("code", ""), "solution") or response.get("code", "")
    try:
        return {"answer": str(agent.execute_code(code))}
    except Exception:
        fallback = agent.call_json_format_llm(
            messages=messages, temperature=0.0, agent_role="task solver",
            return_dict_keys=["reasoning", "answer"],
            instructions="Think step by step in 'reasoning', then give only the final answer in 'answer'.",
        )[0]
        return {"answer": fallback.get("answer", "")}
