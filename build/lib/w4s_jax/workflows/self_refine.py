"""Self-Refine: answer, let a critic judge it, and revise while the critic finds a problem."""

MAX_ROUNDS = 2
KEYS = ["reasoning", "answer"]


def solver(agent, task):
    messages = [{"role": "user", "content": f"# Your Task:\n{task}"}]
    draft = agent.call_json_format_llm(
        messages=messages, temperature=0.0, agent_role="task solver", return_dict_keys=KEYS,
        instructions="Think step by step in 'reasoning', then give only the final answer in 'answer'.",
    )[0]
    for _ in range(MAX_ROUNDS):
        review = agent.call_json_format_llm(
            messages=[{"role": "user", "content": (
                f"# Task:\n{task}\n\n# Proposed solution:\n{draft.get('reasoning', '')}\n"
                f"Answer: {draft.get('answer', '')}")}],
            temperature=0.0, agent_role="critic", return_dict_keys=["feedback", "correct"],
            instructions="Check the solution carefully. Set 'correct' to 'True' only if it is right.",
        )[0]
        if str(review.get("correct", "")).strip().lower() in ("true", "yes", "1"):
            break
        draft = agent.call_json_format_llm(
            messages=[{"role": "user", "content": (
                f"# Task:\n{task}\n\n# Earlier attempt:\n{draft.get('reasoning', '')}\n"
                f"Answer: {draft.get('answer', '')}\n\n# Feedback:\n{review.get('feedback', '')}")}],
            temperature=0.0, agent_role="task solver", return_dict_keys=KEYS,
            instructions="Use the feedback to write a corrected solution; final answer only in 'answer'.",
        )[0]
    return {"answer": draft.get("answer", "")}
