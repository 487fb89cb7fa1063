"""Demo keys for the example proxy, so it runs without LiteLLM's database: ``sk-demo.<team>.<alias>``.

The key ``sk-demo.research.alice`` belongs to the team ``research`` and is called ``alice``;
``sk-demo..ci-bot`` is a key without a team. Any such key is accepted: never use this outside a
demo. A real proxy uses LiteLLM's virtual keys, whose ``team_id`` and ``key_alias`` the fuse reads
the same way.
"""

from __future__ import annotations

from fastapi import Request
from litellm.proxy._types import UserAPIKeyAuth


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    """The team and alias a demo key names."""
    prefix, _, rest = api_key.partition(".")
    team, dot, alias = rest.partition(".")
    if prefix != "sk-demo" or not dot or not alias:
        raise PermissionError("not a demo key: use sk-demo.<team>.<alias>")
    return UserAPIKeyAuth(api_key=api_key, team_id=team or None, key_alias=alias)
