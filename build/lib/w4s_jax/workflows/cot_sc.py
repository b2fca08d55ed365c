"""Chain of thought with self-consistency: several sampled answers, the majority wins."""

from collections import Counter

NUM_SAMPLES = 5


def normalise(answer):
    return str(answer).strip().rstrip(".").replace(",", "").lower()


def solver(agent, task):
    messages = [{"role": "user", "content": f"# Your Task:\n{task}"}]
    responses = agent.call_json_format_llm(
        messages=messages,
        temperature=0.8,
        num_of_response=NUM_SAMPLES,
        agent_role="task solver",
        return_dict_keys=["reasoning", "answer"],
        instructions="Think step by step in 'reasoning', then give only the final answer in 'answer'.",
    )
    answers = [str(r.get("answer", "")) for r in responses]
    votes = Counter(normalise(a) for a in answers)
    winner, _ = votes.most_common(1)[0]
    return {"answer": next(a for a in answers if normalise(a) == winner)}
