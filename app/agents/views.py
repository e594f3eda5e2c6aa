from __future__ import annotations

from app.agents.schemas import AgentView
from app.db.models.agents import Agent
from app.db.types import rfc3339


def agent_view(agent: Agent) -> AgentView:
    return AgentView(
        id=agent.id,
        name=agent.name,
        description=agent.description,
        platform_id=agent.platform_id,
        disabled=agent.disabled,
        plan=agent.plan,
        claimed=agent.platform_id is not None,
        credits_micros=agent.balance_micros,
        spent_micros=agent.spent_micros,
        daily_spending_limit_micros=agent.daily_spending_limit_micros,
        created_at=rfc3339(agent.created_at) or "",
    )
