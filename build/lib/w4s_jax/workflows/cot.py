"""Chain of thought: one executor call that reasons step by step, then answers."""


def solver(agent, task):
    messages = [{"role": "user", "content": f"# Your Task:\n{task}"}]
    response = agent.call_json_format_llm(
        messages=messages,
        temperature=0.0,
        num_of_response=1,
        agent_role="task solver",
        return_dict_keys=["reasoning", "answer"],
        instructions="Think step by step in 'reasoning', then give only the final answer in 'answer'.",
    )
    return {"answer": response[0].get("answer", "")}
