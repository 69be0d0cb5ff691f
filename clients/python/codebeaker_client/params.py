"""Request models built on the client's side: checked before they are sent, so a bad field is
an ``InvalidParams`` naming it, exactly as the server would have answered."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from codebeaker_client.errors import InvalidParams
from codebeaker_client.models.errors import FieldError
from codebeaker_client.models.wire import CLIENT_CONTEXT

__all__ = ["build"]

Model = TypeVar("Model", bound=BaseModel)


def _wire_name(info: FieldInfo, name: str) -> str:
    """Validating by the wire name makes an error's ``loc`` the wire name, as the server's."""
    return info.serialization_alias or info.alias or name


def build(model: type[Model], **fields: Any) -> Model:
    """``model`` from Python field names; every check but the server's maxima, which only
    the server knows."""
    names = model.model_fields
    wire = {
        _wire_name(names[name], name) if name in names else name: value
        for name, value in fields.items()
    }
    try:
        return model.model_validate(wire, context=CLIENT_CONTEXT)
    except ValidationError as exc:
        errors = [
            FieldError(loc=list(error["loc"]), msg=error["msg"], type=error["type"])
            for error in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        shown = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in errors)
        raise InvalidParams(f"Invalid params: {shown}", errors) from None
