"""Model load and unload through the frontend, in Triton's OpenAI frontend's shapes, over
Triton's explicit model control (`ModelServer.load_model`/`unload_model`).

`POST /v1/models/{model}/load` answers the loaded model's card and `/unload`
`{"status": "success", "model": ...}`, as Triton's frontend does; both return once Triton is
done. The name is client input that Triton joins to a folder path: only a plain repository
entry, as `triton-llm make-repo` names them, is passed on; anything else (`a/b`, `..`, empty)
is a 400 naming `model`. An entry not in the repository is a 404, a failed load a 400 with
Triton's reason (`model_load_failed`).
"""

from __future__ import annotations

import re
import time

from openai_frontend.backend import ModelServer
from openai_frontend.errors import BadRequest
from openai_frontend.schemas.models import Model

# make-repo's rule for --model_name (triton_llm/cli/make_repo.py), and a file name's length.
_ENTRY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")


async def load(triton: ModelServer, model: str) -> Model:
    await triton.load_model(_entry(model))
    info = (await triton.models(refresh=True)).get(model)
    return Model(id=model, created=info.created if info is not None else int(time.time()))


async def unload(triton: ModelServer, model: str) -> dict[str, str]:
    await triton.unload_model(_entry(model))
    return {"status": "success", "model": model}


def _entry(model: str) -> str:
    if not _ENTRY.fullmatch(model):
        raise BadRequest(
            f"model: '{model}' is not a model repository entry: letters, digits, '_', '.', '-', "
            "starting with a letter or digit",
            param="model",
        )
    return model
