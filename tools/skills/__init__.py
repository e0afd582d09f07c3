"""Agent Skills: folders with a `SKILL.md` (YAML front matter + Markdown body).

One loader for the shipped skills (`skills/` at the project root) and a team's own folders
(`COCKPIT_SKILLS_DIRS`), as the Agent Skills spec describes them. A skill that breaks the spec is
kept in the list, disabled, with the reason, so `/skills` can say what to fix; nothing crashes.

One package: the loader here, the `/skills` command in `command.py`, and the agent's two skill
tools (`activate_skill`, `read_skill_file`) in `agent_tools.py`; the agent (in `bot/`) uses them
without `tools` importing `bot`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tools.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from tools.services import Services

log = logging.getLogger(__name__)

SKILL_FILE = "SKILL.md"
# Found through the import system, so it works from a checkout, an editable install and a wheel.
SHIPPED_SKILLS_DIR = Path(str(resources.files("skills")))

MAX_NAME_CHARS = 64
MAX_SKILL_PATH_CHARS = 1024
MAX_DESCRIPTION_CHARS = 1024
MAX_SKILLS_PER_DIR = 200  # bound the scan of a user-supplied folder
MAX_SKILL_FILE_BYTES = 200_000  # SKILL.md and any file read through read_skill_file
MAX_LISTED_FILES = 50
NAME_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)


@dataclass(frozen=True)
class Skill:
    """One skill folder. `enabled` is False when it breaks the spec; `problem` says why."""

    name: str
    description: str
    folder: Path
    body: str = ""
    license: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    enabled: bool = True
    problem: str | None = None

    @property
    def status(self) -> str:
        return "enabled" if self.enabled else f"disabled: {self.problem}"

    def files(self) -> list[str]:
        """Relative paths of the files bundled with the skill (not their contents)."""
        out: list[str] = []
        root = self.folder.resolve()
        for path in sorted(self.folder.rglob("*")):
            if len(out) >= MAX_LISTED_FILES:
                break
            if path.name == SKILL_FILE and path.parent == self.folder:
                continue
            if path.is_file() and _inside(path, root):
                out.append(path.relative_to(self.folder).as_posix())
        return out

    def read_file(self, relative: str) -> str:
        """A bundled file's text, confined to the skill's folder.

        Rejects absolute paths, `..`, and symlinks that lead outside the folder."""
        rel = (relative or "").strip()
        if not rel:
            raise InvalidInput("Give the path of a file inside the skill, e.g. references/x.md.")
        if "\x00" in rel or len(rel) > MAX_SKILL_PATH_CHARS:
            # The OS refuses NUL in a path with ValueError, which is not an answer for a person.
            raise InvalidInput("That is not a file path (NUL character or too long).")
        pure = Path(rel)
        if pure.is_absolute() or rel.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", rel):
            raise InvalidInput(f"{rel!r} is an absolute path; use a path relative to the skill.")
        if ".." in re.split(r"[\\/]", rel):
            raise InvalidInput(f"{rel!r} leaves the skill's folder ('..' is not allowed).")
        root = self.folder.resolve()
        target = self.folder / pure
        if not _inside(target, root):
            raise InvalidInput(f"{rel!r} points outside the skill's folder.")
        if not target.is_file():
            raise NotFound(
                f"Skill {self.name} has no file {rel!r}.",
                fix="Files: " + (", ".join(self.files()) or "none"),
            )
        if target.stat().st_size > MAX_SKILL_FILE_BYTES:
            raise InvalidInput(f"{rel!r} is larger than {MAX_SKILL_FILE_BYTES} bytes.")
        try:
            return target.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{rel!r} is not a text file.") from None


@dataclass
class SkillSet:
    """The loaded skills in load order (shipped first), enabled and disabled."""

    skills: list[Skill] = field(default_factory=list)

    def enabled(self) -> list[Skill]:
        return [s for s in self.skills if s.enabled]

    def names(self) -> list[str]:
        return [s.name for s in self.enabled()]

    def get(self, name: str) -> Skill | None:
        """An enabled skill by name."""
        return next((s for s in self.skills if s.enabled and s.name == name), None)


def parse_skills_dirs(value: str | Sequence[str | Path] | None) -> list[Path]:
    """`COCKPIT_SKILLS_DIRS`: folders separated by the OS path separator or commas."""
    if not value:
        return []
    parts: Iterable[str | Path]
    parts = re.split(rf"[,{re.escape(os.pathsep)}]", value) if isinstance(value, str) else value
    return [Path(str(p).strip()).expanduser() for p in parts if str(p).strip()]


def load_skills(
    *,
    extra_dirs: str | Sequence[str | Path] | None = None,
    include_shipped: bool = True,
) -> SkillSet:
    """Load `*/SKILL.md` from the shipped folder, then each extra folder, in that order.

    A name seen twice keeps the first one; the later copy is listed as disabled."""
    dirs = ([SHIPPED_SKILLS_DIR] if include_shipped else []) + parse_skills_dirs(extra_dirs)
    result = SkillSet()
    seen: dict[str, Path] = {}
    for base in dirs:
        if not base.is_dir():
            log.warning("skills folder %s does not exist; skipped", base)
            continue
        candidates = sorted(p for p in base.iterdir() if (p / SKILL_FILE).is_file())
        for folder in candidates[:MAX_SKILLS_PER_DIR]:
            skill = load_skill(folder)
            if skill.enabled and skill.name in seen:
                skill = _disabled(
                    folder,
                    f"duplicate name: {skill.name} is already loaded from {seen[skill.name]}",
                )
            elif skill.enabled:
                seen[skill.name] = folder
            if not skill.enabled:
                log.warning("skill in %s disabled: %s", folder, skill.problem)
            result.skills.append(skill)
    return result


def load_skill(folder: Path) -> Skill:
    """Parse and validate one skill folder; never raises for a bad skill."""
    path = folder / SKILL_FILE
    try:
        if path.stat().st_size > MAX_SKILL_FILE_BYTES:
            return _disabled(folder, f"{SKILL_FILE} is larger than {MAX_SKILL_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return _disabled(folder, f"cannot read {SKILL_FILE} ({exc.__class__.__name__})")
    m = _FRONT_MATTER.match(text.lstrip("\ufeff"))
    if not m:
        return _disabled(folder, f"{SKILL_FILE} has no YAML front matter between --- lines")
    try:
        meta = _parse_yaml(m.group(1))
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "parse error"
        return _disabled(folder, f"front matter is not valid YAML ({first})")
    if not isinstance(meta, dict):
        return _disabled(
            folder, "front matter must be a YAML mapping (name: ..., description: ...)"
        )
    body = text.lstrip("\ufeff")[m.end() :].strip()
    problem = _validate(meta, folder)
    name = meta.get("name") if isinstance(meta.get("name"), str) else folder.name
    description = meta.get("description") if isinstance(meta.get("description"), str) else ""
    if problem:
        return _disabled(folder, problem, name=str(name), description=str(description))
    metadata = meta.get("metadata") or {}
    return Skill(
        name=str(name),
        description=str(description).strip(),
        folder=folder,
        body=body,
        license=str(meta["license"]) if meta.get("license") is not None else None,
        metadata={str(k): str(v) for k, v in metadata.items()},
    )


def skills_for(services: Services) -> SkillSet:
    """The process's loaded skills (set by `bot.app`); loads the shipped ones if none are set."""
    if services.skills is None:
        services.skills = load_skills()
    return services.skills


def name_problem(name: Any) -> str | None:
    """Why a skill name breaks the spec, or None when it is valid."""
    if not isinstance(name, str) or not name:
        return "name is missing from the front matter"
    if len(name) > MAX_NAME_CHARS:
        return f"name is longer than {MAX_NAME_CHARS} characters"
    if not NAME_PATTERN.match(name):
        return (
            f"name {name!r} must use lowercase letters, digits and single hyphens, "
            "not starting or ending with a hyphen"
        )
    return None


def _validate(meta: dict[str, Any], folder: Path) -> str | None:
    name = meta.get("name")
    problem = name_problem(name)
    if problem:
        return problem
    if name != folder.name:
        return f"name {name!r} does not match its folder name {folder.name!r}"
    description = meta.get("description")
    if not isinstance(description, str) or not description.strip():
        return "description is missing from the front matter"
    if len(description) > MAX_DESCRIPTION_CHARS:
        return f"description is longer than {MAX_DESCRIPTION_CHARS} characters"
    metadata = meta.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict)
        and all(isinstance(v, str | int | float | bool) for v in metadata.values())
    ):
        return "metadata must be a map of names to strings"
    lic = meta.get("license")
    if lic is not None and not isinstance(lic, str):
        return "license must be a string"
    return None


def _parse_yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        # Common in the wild: `description: Use when: x` unquoted. Quote such values and retry.
        return yaml.safe_load(_quote_colon_values(text))


def _quote_colon_values(text: str) -> str:
    out = []
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9_-]+):[ \t]+(.+)$", line)
        if m and ": " in m.group(2) and not m.group(2).lstrip().startswith(("'", '"', "|", ">")):
            value = m.group(2).replace("'", "''")
            line = f"{m.group(1)}: '{value}'"
        out.append(line)
    return "\n".join(out)


def _disabled(
    folder: Path, problem: str, *, name: str | None = None, description: str = ""
) -> Skill:
    return Skill(
        name=name or folder.name,
        description=description.strip(),
        folder=folder,
        enabled=False,
        problem=problem,
    )


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError, ValueError):  # symlink loops; NUL in a path
        return False


__all__ = [
    "SHIPPED_SKILLS_DIR",
    "Skill",
    "SkillSet",
    "load_skill",
    "load_skills",
    "name_problem",
    "parse_skills_dirs",
    "skills_for",
]
