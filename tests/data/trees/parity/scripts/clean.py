import json


def load(path: str) -> dict:
    with open(path) as handle:
        return json.load(handle)
