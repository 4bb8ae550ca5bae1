# The seed's code is kept as it was, untyped and reusing its loop variable:
# ruff: noqa: PLW2901
# mypy: ignore-errors
"""The seed's Forefront provider, kept as it was, for ``wire.py`` to race against.

The function below is the seed's code unchanged, except that the endpoint it
POSTs to is the module global ``URL`` (set by the bench to its local server)
instead of the long-gone public address.
"""

import json

import requests

URL = "http://127.0.0.1:0/free-chat"


# fmt: off
def _create_completion(model: str, messages: list, stream: bool, **kwargs):
    json_data = {
        'text': messages[-1]['content'],
        'action': 'noauth',
        'id': '',
        'parentId': '',
        'workspaceId': '',
        'messagePersona': '607e41fe-95be-497e-8e97-010a59b2e2c0',
        'model': 'gpt-4',
        'messages': messages[:-1] if len(messages) > 1 else [],
        'internetMode': 'auto'
    }
    response = requests.post( URL,
        json=json_data, stream=True)
    for token in response.iter_lines():
        if b'delta' in token:
            token = json.loads(token.decode().split('data: ')[1])['delta']
            yield (token)
# fmt: on
