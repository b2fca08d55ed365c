"""The W4S release's self-consistency seed for GSM-Hard: 5 "math expert" answers at 0.8, majority vote.

Same calls and prompts as `COT_SC` in the release (`fannie1208/W4S`, `src/tasks/gsmhard/prompt.py`);
like it, answers are voted on as written (no normalisation).
"""

from collections import Counter


def solver(agent, task):
    instructions = "Requirements:\n1. Please explain step by step.\n2. The answer MUST be a float."
    replies = agent.call_json_format_llm(
        messages=[{"role": "user", "content": f"# Your Task:\n{task}"}],
        temperature=0.8,
        num_of_response=5,
        agent_role="math expert",
        return_dict_keys=["reasoning", "answer"],
        instructions=instructions,
    )
    answers = [str(reply.get("answer", "")) for reply in replies]
    return {"answer": Counter(answers).most_common(1)[0][0]}
