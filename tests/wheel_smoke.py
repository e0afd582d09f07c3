"""Smoke test of the built wheel, run by `make wheel-smoke` (and CI) from a fresh virtualenv
outside the checkout: the installed package must find its shipped skills and prompt templates.

Only the test fakes come from the checkout (this file's folder is put on sys.path for them);
`bot`, `tools`, `storage`, `prompts` and `skills` must import from the installed wheel.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != CHECKOUT]
sys.path.insert(0, str(CHECKOUT / "tests"))

from fakes.fake_anthropic import running_fake_anthropic, text_turn  # noqa: E402

import bot  # noqa: E402
import skills  # noqa: E402
from bot.testing import running_bot  # noqa: E402

SHIPPED = {"cost-optimization", "incident-triage", "model-selection", "runpod-deployment"}


def _installed(module: object) -> Path:
    path = Path(str(getattr(module, "__file__", ""))).resolve()
    if CHECKOUT in path.parents:
        raise SystemExit(f"{module!r} was imported from the checkout ({path}), not the wheel")
    return path


async def main() -> None:
    print("bot from", _installed(bot).parent, "· skills from", _installed(skills).parent)
    with tempfile.TemporaryDirectory() as tmp:
        async with running_fake_anthropic() as fake:
            fake.add(text_turn("Hello from the fake Claude."))
            async with running_bot(
                Path(tmp), ANTHROPIC_API_KEY="sk-ant-test", ANTHROPIC_BASE_URL=fake.url
            ) as harness:
                listed = (await harness.send("/skills")).as_plain_text()
                missing = [name for name in SHIPPED if name not in listed]
                if missing:
                    raise SystemExit(
                        f"/skills does not list the shipped skills {missing}:\n{listed}"
                    )
                answer = await harness.send("hello")
            (request,) = fake.message_requests
    if "You are AI Dev Cockpit" not in request.system_text or "<available_skills>" not in (
        request.system_text
    ):
        raise SystemExit("the agent turn did not render the shipped system prompt with skills")
    if answer.text != "Hello from the fake Claude.":
        raise SystemExit(f"unexpected agent answer: {answer.text!r}")
    print(
        f"/skills lists {len(SHIPPED)} shipped skills; agent turn rendered the system prompt "
        f"({len(request.system_text)} characters). Wheel smoke test passed."
    )


if __name__ == "__main__":
    asyncio.run(main())
