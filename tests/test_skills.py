"""Skills: the loader (shipped + COCKPIT_SKILLS_DIRS), validation, `/skills`, and the agent's
`activate_skill` / `read_skill_file` tools (through the fake Messages API)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fakes.fake_anthropic import FakeAnthropic, running_fake_anthropic, text_turn, tool_use

from bot.testing import running_bot
from tools.errors import InvalidInput, NotFound
from tools.skills import (
    MAX_DESCRIPTION_CHARS,
    SHIPPED_SKILLS_DIR,
    SkillSet,
    load_skills,
    parse_skills_dirs,
)
from tools.skills.agent_tools import (
    ACTIVATE_SKILL,
    READ_SKILL_FILE,
    activation_text,
    run_skill_tool,
    skill_tool_schemas,
)

SHIPPED = {"cost-optimization", "incident-triage", "model-selection", "runpod-deployment"}


def write_skill(base: Path, folder: str, front_matter: str | None, body: str = "Do it.") -> Path:
    path = base / folder
    path.mkdir(parents=True)
    text = body if front_matter is None else f"---\n{front_matter}\n---\n{body}\n"
    (path / "SKILL.md").write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def user_skills(tmp_path: Path) -> Path:
    """A team's skill folder: two good skills and one of each way to break the spec."""
    base = tmp_path / "team-skills"
    good = write_skill(
        base,
        "gpu-quota",
        "name: gpu-quota\ndescription: Our GPU quota rules. Use when asked about quotas.\n"
        "license: Proprietary\nmetadata:\n  owner: platform-team\n  version: 2",
        "Check quotas with care.\nSee references/quota.md for the numbers.",
    )
    (good / "references").mkdir()
    (good / "references" / "quota.md").write_text("Quota: 4 GPUs per team.", encoding="utf-8")
    write_skill(
        base,
        "colon-desc",
        "name: colon-desc\ndescription: Use when: someone says hello",
    )
    write_skill(base, "Bad_Name", "name: Bad_Name\ndescription: bad name")
    write_skill(base, "double--hyphen", "name: double--hyphen\ndescription: x")
    write_skill(base, "-leading", "name: -leading\ndescription: x")
    write_skill(base, "mismatch", "name: other-name\ndescription: wrong folder")
    write_skill(base, "no-description", "name: no-description")
    write_skill(
        base,
        "long-description",
        f"name: long-description\ndescription: {'x' * (MAX_DESCRIPTION_CHARS + 1)}",
    )
    write_skill(base, "x" * 65, f"name: {'x' * 65}\ndescription: too long a name")
    write_skill(base, "no-front-matter", None, "# Just markdown")
    write_skill(base, "bad-yaml", "name: bad-yaml\ndescription: [unclosed")
    write_skill(base, "not-a-map", "- just\n- a list")
    write_skill(base, "bad-metadata", "name: bad-metadata\ndescription: x\nmetadata: [1, 2]")
    write_skill(base, "runpod-deployment", "name: runpod-deployment\ndescription: a copy")
    (base / "not-a-skill").mkdir()  # no SKILL.md: ignored
    return base


# --- the loader ---------------------------------------------------------------------------------


def test_shipped_skills_load_and_follow_the_spec() -> None:
    skills = load_skills()
    assert {s.name for s in skills.enabled()} == SHIPPED
    for s in skills.enabled():
        assert s.folder.parent == SHIPPED_SKILLS_DIR and s.folder.name == s.name
        assert 1 <= len(s.description) <= MAX_DESCRIPTION_CHARS
        assert "Use when" in s.description  # says *when*, so Claude can route to it
        assert len(s.body) > 1000 and not s.body.startswith("---")
        assert s.license == "Apache-2.0" and s.metadata["author"] == "ai-dev-cockpit"


def test_shipped_skills_carry_specific_facts() -> None:
    skills = load_skills()
    deployment = skills.get("runpod-deployment")
    assert deployment is not None
    assert "references/gpu-pools.md" in deployment.files()
    pools = deployment.read_file("references/gpu-pools.md")
    assert "AMPERE_24" in pools and "0.00019" in pools and "HOPPER_141" in pools
    cost = skills.get("cost-optimization")
    assert cost is not None and "scale to zero" in cost.body and "idle timeout" in cost.body
    selection = skills.get("model-selection")
    assert selection is not None and "0.92" in selection.body
    triage = skills.get("incident-triage")
    assert triage is not None and "No available memory for the cache blocks" in triage.body


def test_invalid_skills_are_disabled_with_the_reason(user_skills: Path) -> None:
    skills = load_skills(extra_dirs=str(user_skills))
    problems = {s.folder.name: s.problem for s in skills.skills if not s.enabled}
    assert "lowercase letters, digits and single hyphens" in problems["Bad_Name"]
    assert "single hyphens" in problems["double--hyphen"]
    assert "not starting or ending with a hyphen" in problems["-leading"]
    assert problems["mismatch"] == "name 'other-name' does not match its folder name 'mismatch'"
    assert problems["no-description"] == "description is missing from the front matter"
    assert problems["long-description"] == "description is longer than 1024 characters"
    assert problems["x" * 65] == "name is longer than 64 characters"
    assert "no YAML front matter" in problems["no-front-matter"]
    assert "not valid YAML" in problems["bad-yaml"]
    assert "must be a YAML mapping" in problems["not-a-map"]
    assert problems["bad-metadata"] == "metadata must be a map of names to strings"
    assert "duplicate name" in problems["runpod-deployment"]
    enabled = {s.name for s in skills.enabled()}
    assert enabled == SHIPPED | {"gpu-quota", "colon-desc"}
    assert "not-a-skill" not in {s.folder.name for s in skills.skills}
    # The shipped copy wins over the duplicate.
    shipped = skills.get("runpod-deployment")
    assert shipped is not None and shipped.folder.parent == SHIPPED_SKILLS_DIR


def test_front_matter_fields_are_read(user_skills: Path) -> None:
    skills = load_skills(extra_dirs=[user_skills], include_shipped=False)
    quota = skills.get("gpu-quota")
    assert quota is not None
    assert quota.license == "Proprietary"
    assert quota.metadata == {"owner": "platform-team", "version": "2"}
    assert quota.body.startswith("Check quotas with care.")
    colon = skills.get("colon-desc")  # an unquoted ": " in a value is read leniently
    assert colon is not None and colon.description == "Use when: someone says hello"


def test_skills_dirs_setting_is_split_and_missing_folders_are_skipped(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert parse_skills_dirs(f"{a},{b}") == [a, b]
    assert parse_skills_dirs(f"{a}{os.pathsep} {b}") == [a, b]
    assert parse_skills_dirs("") == []
    skills = load_skills(extra_dirs=str(tmp_path / "missing"))
    assert {s.name for s in skills.enabled()} == SHIPPED


# --- read_skill_file confinement ------------------------------------------------------------------


def test_read_skill_file_is_confined_to_the_skill_folder(user_skills: Path, tmp_path: Path) -> None:
    skill = load_skills(extra_dirs=[user_skills], include_shipped=False).get("gpu-quota")
    assert skill is not None
    assert skill.read_file("references/quota.md") == "Quota: 4 GPUs per team."
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret", encoding="utf-8")
    (skill.folder / "escape.md").symlink_to(secret)
    (skill.folder / "inside.md").symlink_to(skill.folder / "references" / "quota.md")
    (skill.folder / "refs").symlink_to(tmp_path, target_is_directory=True)
    assert skill.read_file("inside.md") == "Quota: 4 GPUs per team."
    for bad, message in [
        ("../colon-desc/SKILL.md", "'..' is not allowed"),
        ("references/../../colon-desc/SKILL.md", "'..' is not allowed"),
        (str(secret), "absolute path"),
        ("/etc/passwd", "absolute path"),
        ("escape.md", "outside the skill's folder"),
        ("refs/secret.txt", "outside the skill's folder"),
        ("", "Give the path"),
    ]:
        with pytest.raises(InvalidInput) as err:
            skill.read_file(bad)
        assert message in str(err.value), bad
    with pytest.raises(NotFound) as missing:
        skill.read_file("references/nope.md")
    assert "references/quota.md" in str(missing.value)
    # The listing names files inside the folder only (the escaping symlinks are left out).
    assert skill.files() == ["inside.md", "references/quota.md"]


# --- the agent's skill tools ---------------------------------------------------------------------


def test_activate_skill_enum_lists_only_enabled_skills(user_skills: Path) -> None:
    skills = load_skills(extra_dirs=str(user_skills))
    activate, read = skill_tool_schemas(skills)
    assert activate["name"] == ACTIVATE_SKILL and read["name"] == READ_SKILL_FILE
    enum = activate["input_schema"]["properties"]["name"]["enum"]
    assert set(enum) == SHIPPED | {"gpu-quota", "colon-desc"}
    assert read["input_schema"]["properties"]["skill"]["enum"] == enum
    assert skill_tool_schemas(SkillSet()) == []


def test_activation_returns_the_body_and_lists_files_without_reading_them(
    user_skills: Path,
) -> None:
    skills = load_skills(extra_dirs=[user_skills], include_shipped=False)
    quota = skills.get("gpu-quota")
    assert quota is not None
    text = activation_text(quota)
    assert text.startswith('<skill_content name="gpu-quota">\nCheck quotas with care.')
    assert "- references/quota.md" in text
    assert "Quota: 4 GPUs per team." not in text  # resources are not read eagerly
    assert "---" not in text  # front matter stripped
    out, is_error = run_skill_tool(skills, READ_SKILL_FILE, {"skill": "gpu-quota", "path": "../x"})
    assert is_error and "not allowed" in out
    out, is_error = run_skill_tool(skills, ACTIVATE_SKILL, {"name": "mismatch"})
    assert is_error and "no enabled skill called 'mismatch'" in out


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with running_fake_anthropic() as f:
        yield f


async def test_agent_activates_a_skill_and_reads_its_file(
    tmp_path: Path, fake: FakeAnthropic, user_skills: Path
) -> None:
    fake.add(
        tool_use(ACTIVATE_SKILL, {"name": "gpu-quota"}),
        tool_use(READ_SKILL_FILE, {"skill": "gpu-quota", "path": "references/quota.md"}),
        tool_use(READ_SKILL_FILE, {"skill": "gpu-quota", "path": "../../../etc/passwd"}),
        text_turn("Each team may use 4 GPUs."),
    )
    async with running_bot(
        tmp_path / "bot",
        ANTHROPIC_API_KEY="sk-ant-test",
        ANTHROPIC_BASE_URL=fake.url,
        COCKPIT_SKILLS_DIRS=str(user_skills),
    ) as bot:
        reply = await bot.send("what is our GPU quota?", user="vic", role="viewer")
    assert reply.text == "Each team may use 4 GPUs."
    first = fake.message_requests[0]
    cached = first.body["system"][0]["text"]
    assert "<name>gpu-quota</name>" in cached and "<name>Bad_Name</name>" not in cached
    enum = next(t for t in first.body["tools"] if t["name"] == ACTIVATE_SKILL)["input_schema"]
    assert "gpu-quota" in enum["properties"]["name"]["enum"]

    def result_of(i: int) -> dict[str, object]:
        block = fake.message_requests[i].messages[-1]["content"][0]
        assert block["type"] == "tool_result"
        return block  # type: ignore[no-any-return]

    assert "Check quotas with care." in str(result_of(1)["content"])
    assert "is_error" not in result_of(1)
    assert result_of(2)["content"] == "Quota: 4 GPUs per team."
    assert result_of(3)["is_error"] is True and "not allowed" in str(result_of(3)["content"])


async def test_skills_command_lists_status_and_reasons(tmp_path: Path, user_skills: Path) -> None:
    async with running_bot(tmp_path / "bot", COCKPIT_SKILLS_DIRS=str(user_skills)) as bot:
        reply = await bot.send("/skills", user="vic", role="viewer")
    assert reply.ok and reply.table is not None
    rows = {(row[0], row[1]) for row in reply.table.rows}
    assert ("runpod-deployment", "enabled") in rows
    assert ("gpu-quota", "enabled") in rows
    assert (
        "other-name",
        "disabled: name 'other-name' does not match its folder name 'mismatch'",
    ) in rows
    assert ("no-description", "disabled: description is missing from the front matter") in rows
    duplicate = [r for r in rows if r[0] == "runpod-deployment" and r[1] != "enabled"]
    assert duplicate and "duplicate name" in duplicate[0][1]
    assert f"{len(SHIPPED) + 2} of {len(reply.table.rows)} skills are enabled" in reply.text


async def test_catalog_in_the_prompt_is_escaped(tmp_path: Path, fake: FakeAnthropic) -> None:
    base = tmp_path / "s"
    write_skill(base, "xml-ish", "name: xml-ish\ndescription: 'Use for <b>bold</b> & more'")
    fake.add(text_turn("ok"))
    async with running_bot(
        tmp_path / "bot",
        ANTHROPIC_API_KEY="sk-ant-test",
        ANTHROPIC_BASE_URL=fake.url,
        COCKPIT_SKILLS_DIRS=str(base),
    ) as bot:
        await bot.send("hello")
    cached = fake.message_requests[0].body["system"][0]["text"]
    assert "<description>Use for &lt;b&gt;bold&lt;/b&gt; &amp; more</description>" in cached
