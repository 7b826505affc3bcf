from __future__ import annotations

from ..model import Plan
from ..plan.document import dumps


class JsonRenderer:
    def render(self, plan: Plan) -> str:
        return dumps(plan)
