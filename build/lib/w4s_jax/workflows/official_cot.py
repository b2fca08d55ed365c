"""The W4S release's chain-of-thought seed for GSM-Hard: one call at temperature 0.8 as a "math expert".

Same calls and prompts as `COT` in the release (`fannie1208/W4S`, `src/tasks/gsmhard/prompt.py`).
"""


def solver(agent, task):
    instructions = "Requirements:\n1. Please explain step by step.\n2. The answer MUST be a float."
    reply = agent.call_json_format_llm(
        messages=[{"role": "user", "content": f"# Your Task:\n{task}"}],
        temperature=0.8,
        num_of_response=1,
        agent_role="math expert",
        return_dict_keys=["reasoning", "answer"],
        instructions=instructions,
    )[0]
    reply["answer"] = str(reply.get("answer", ""))
    return reply
