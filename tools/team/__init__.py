"""Teams and access, one module per concern; importing the package registers their tools.

- `members`: members, roles, ownership, invites, joining
- `access`: provider credentials and HTTP API keys
- `audit`: the audit trail and the activity summary
- `workspace`: workspace settings (timezone)
"""

from tools.team import access, audit, members, workspace

__all__ = ["access", "audit", "members", "workspace"]
