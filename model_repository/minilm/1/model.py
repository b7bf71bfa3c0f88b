# An embedding / encoder-task model; everything lives in the triton_llm package (docs/protocol.md).
from triton_llm.encoders.runner import TritonPythonModel  # noqa: F401
