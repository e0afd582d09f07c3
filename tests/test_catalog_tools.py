"""/models, /model and /fit through the whole bot against a fake Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path

from fakes.fake_hub import running_fake_hub

from bot.testing import running_bot


async def test_catalog_commands_against_the_fake_hub(tmp_path: Path) -> None:
    async with (
        running_fake_hub() as hub,
        running_bot(tmp_path, HF_ENDPOINT=hub.url, COCKPIT_HUB_OFFLINE="off") as bot,
    ):
        hub.models["Qwen/Qwen3-8B"]["downloads"] = 1_000  # the catalog has no counts
        found = await bot.send("/models qwen --limit 3")
        assert found.ok and found.table is not None
        assert found.table.rows[0][0] == "Qwen/Qwen3-8B"  # most downloaded first
        assert "Live from Hugging Face" in (found.footer or "")

        # issue 16: "qwen" is a current Qwen3 model that fits a 24 GB card (was Qwen2.5-7B)
        fit = await bot.send("/fit qwen")
        assert fit.ok, fit.text
        assert "Qwen3-8B bf16: 15.3 GiB weights" in fit.text
        assert "24 GB" in (fit.title or "")

        big = await bot.send("/fit Qwen/Qwen2.5-72B-Instruct")
        assert big.ok and big.title and "×" in big.title  # 72B bf16 needs several GPUs

        ambiguous = await bot.send("/model deepseek")
        assert not ambiguous.ok and "Pick one:" in ambiguous.text
        # each choice says what it costs
        assert "DeepSeek-R1-Distill-Qwen-7B (deepseek-ai/DeepSeek-R1-Distill-Qwen-7B): " in (
            ambiguous.text
        )
        assert "/s" in ambiguous.text

        unknown = await bot.send("/model Qwen/Qwen2.5-7B-Instruk")
        assert not unknown.ok and "Qwen/Qwen2.5-7B-Instruct" in unknown.text

        calls_before = hub.count()
        again = await bot.send("/model qwen")
        assert again.ok and hub.count() == calls_before  # cached in the database

        hub.down = True
        down = await bot.send("/model Qwen/Qwen2.5-14B-Instruct")
        assert down.ok and "bundled catalog compiled 2026-12-01" in (down.footer or "")
