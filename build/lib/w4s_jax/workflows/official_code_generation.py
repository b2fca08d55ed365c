"""The W4S release's code-generation seed for GSM-Hard: a "Python programmer" writes solution(), and
execute_code runs it; a result that is not an int or float, or any failure, answers "0".

Same calls and prompts as `Code_Generation` in the release (`fannie1208/W4S`, `src/tasks/gsmhard/prompt.py`).
"""


def solver(agent, task):
    instructions = (
        "You should generate valid Python code to solve the math problem. Requirements:\n"
        "1. The code must define a solution() function and return only the final numerical answer.\n"
        "2. Use only basic arithmetic operation.\n"
        "3. Do not introduce a dead loop."
    )
    prompt = ("Write Python code to solve this math problem. The code should follow the requirements.\n"
              f"Problem: {task}")
    reply = agent.call_json_format_llm(
        messages=[{"role": "user", "content": prompt}],
        temperature=0.3,
        num_of_response=1,
        agent_role="Python programmer",
        return_dict_keys=["reasoning", "code"],
        instructions=instructions,
    )[0]
    code = reply.get("code", "")
    try:
        result = agent.execute_code(code)
        if not isinstance(result, (int, float)):
            raise ValueError("Invalid solution code - result must be numeric")
        return {"answer": str(result), "code": code}
    except Exception as error:
        return {"answer": "0", "error": str(error)}
