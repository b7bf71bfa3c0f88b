# A generation model; everything lives in the triton_llm package (docs/protocol.md).
from triton_llm.generation.runner import TritonPythonModel  # noqa: F401
