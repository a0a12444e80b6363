"""rules.py: the shipped taxonomy and labels load, and every kind of bad rules file is refused with file:line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tracker.config import DEFAULT_RULES_DIR
from tracker.errors import ConfigError
from tracker.queries import load_queries
from tracker.rules import load_labels, load_taxonomy

BAD = Path(__file__).parent / "fixtures" / "classify" / "bad"


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy(DEFAULT_RULES_DIR / "taxonomy.yml")


def test_shipped_taxonomy_has_every_facet_and_tag_of_the_survey(taxonomy):
    assert {f.name for f in taxonomy.facets} == {"paradigm", "mllm", "architecture", "topic", "task"}
    expected = {
        "contrastive",
        "generative",
        "hybrid",
        "conversational",
        "visually-prompted",
        "heterogeneous",
        "MIT",
        "M-ICL",
        "M-CoT",
        "LAVR",
        "nfnet",
        "vit",
        "clip-vit",
        "eva-clip",
        "cross-attention",
        "q-former",
        "p-former",
        "mlp",
        "linear",
        "hallucination",
        "evaluation",
        "alignment",
        "unified",
        "dataset",
        "classification",
        "detection",
        "segmentation",
        "tracking",
        "action-recognition",
    }
    assert set(taxonomy.slugs) == expected
    assert all(t.description for t in taxonomy.tags)


def test_named_systems_carry_the_surveys_facts(taxonomy):
    facts = {s.name: set(s.tags) for s in taxonomy.named_systems}
    assert "contrastive" in facts["CLIP"]
    assert "q-former" in facts["BLIP-2"] and "q-former" in facts["MiniGPT-4"]
    assert "linear" in facts["LLaVA"] and "mlp" in facts["LLaVA-1.5"]
    assert "visually-prompted" in facts["SAM"]
    llava = next(s for s in taxonomy.named_systems if s.name == "LLaVA")
    assert llava.matches("9999.99999", "Visual  Instruction Tuning")
    assert not llava.matches("9999.99999", "Improved Baselines with Visual Instruction Tuning")


def test_sections_map_to_tags_by_name(taxonomy):
    bradyfu = "BradyFU/Awesome-Multimodal-Large-Language-Models"
    assert taxonomy.tags_for_section(f"{bradyfu}@main", "Multimodal Chain-of-Thought") == ["M-CoT"]
    assert set(taxonomy.tags_for_section(f"{bradyfu}@Alignment", "Hallucination")) == {
        "hallucination",
        "alignment",
    }
    assert taxonomy.tags_for_section(f"{bradyfu}@Benchmarks", "Foundational Capability / OCR") == [
        "evaluation"
    ]
    assert set(taxonomy.tags_for_section(f"{bradyfu}@main", "Datasets of Multimodal Instruction Tuning")) == {
        "MIT",
        "dataset",
    }
    assert taxonomy.tags_for_section(f"{bradyfu}@main", "Foundation Models") == []


def test_shipped_labels_load_and_cover_the_rare_tags(taxonomy):
    labels = load_labels(DEFAULT_RULES_DIR / "labels.csv", taxonomy)
    counts = {t: sum(t in lab.tags for lab in labels.labels) for t in ("M-ICL", "M-CoT", "LAVR", "MIT")}
    assert all(n >= 8 for n in counts.values()), counts
    assert re.fullmatch(r"[0-9a-f]{16}", labels.content_hash)


@pytest.mark.parametrize(
    ("name", "line", "message"),
    [
        ("malformed.yml", 9, "malformed YAML"),
        ("unknown_facet.yml", 9, "unknown facet 'topics'"),
        ("duplicate_tag.yml", 13, "duplicate tag 'MIT'"),
        ("unknown_system_tag.yml", 10, "unknown tag 'contrastive'"),
    ],
)
def test_bad_taxonomy_is_refused_with_file_and_line(name, line, message):
    with pytest.raises(ConfigError) as info:
        load_taxonomy(BAD / name)
    text = str(info.value)
    assert f"{BAD / name}:{line}:" in text and message in text
    assert "\n" not in text


def test_duplicate_yaml_key_is_refused(tmp_path):
    path = tmp_path / "taxonomy.yml"
    path.write_text(
        (BAD / "good.yml").read_text().replace("    facet: mllm\n", "    facet: mllm\n    facet: topic\n", 1)
    )
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}:7: duplicate key 'facet'"):
        load_taxonomy(path)


@pytest.mark.parametrize(
    ("name", "line", "message"),
    [
        ("unknown_tag_labels.csv", 4, "unknown tag 'q-former'"),
        ("bad_id_labels.csv", 3, "not an arXiv id"),
        ("duplicate_id_labels.csv", 3, "duplicate arxiv_id 2304.08485"),
        (
            "missing_tags_column_labels.csv",
            3,
            "expected arxiv_id,tags (a paper with no tag has an empty tags field",
        ),
    ],
)
def test_bad_labels_are_refused_with_file_and_line(name, line, message):
    taxonomy = load_taxonomy(BAD / "good.yml")
    with pytest.raises(ConfigError) as info:
        load_labels(BAD / name, taxonomy)
    assert f"{BAD / name}:{line}:" in str(info.value) and message in str(info.value)


def test_good_small_files_load():
    taxonomy = load_taxonomy(BAD / "good.yml")
    assert taxonomy.slugs == ("MIT", "hallucination")
    assert taxonomy.resolve("mit").slug == "MIT"
    with pytest.raises(ConfigError, match="unknown tag 'nope'"):
        taxonomy.resolve("nope")


@pytest.mark.parametrize(
    "text, message",
    [
        ("categories: [cs.CV]\noverlap_days: -1\n", "overlap_days -1 must be between 0 and 30"),
        ("categories: [cs.CV]\noverlap_days: .nan\n", "overlap_days nan must be between 0 and 30"),
        ("categories: [cs.CV]\ninitial_days: 99999999\n", "initial_days 1e+08 must be between 0 and 366"),
        ("categories: [cs.CV]\ninitial_days: two\n", "must be numbers"),
        ("categories: [cs.CV\n", "line 2: invalid YAML"),
        ("categories: [cs.VC]\n", "unknown arXiv category 'cs.VC'"),
        ("categories: [cs.CV]\nwindow: 3\n", "unknown key 'window'"),
    ],
)
def test_bad_queries_file_is_refused_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "queries.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        load_queries(path)
    assert str(err.value).startswith(str(path))


def test_the_shipped_queries_file_loads() -> None:
    queries = load_queries(DEFAULT_RULES_DIR / "queries.yml")
    assert "cs.CV" in queries.categories and 0 <= queries.overlap_days <= 30


def test_a_mistyped_rules_folder_is_an_error_not_the_defaults(tmp_path: Path, monkeypatch) -> None:
    from tracker.config import rules_dir

    monkeypatch.setenv("TRACKER_RULES", str(tmp_path / "rulez"))
    with pytest.raises(ConfigError, match="TRACKER_RULES=.*rulez: no such folder"):
        rules_dir()
    monkeypatch.setenv("TRACKER_RULES", str(tmp_path))
    assert rules_dir() == tmp_path


@pytest.mark.parametrize(
    ("edit", "line", "message"),
    [
        (("    facet: mllm\n", "    facet: mllm\n    threshold: .nan\n"), 5, "threshold of"),
        (("    facet: mllm\n", "    facet: mllm\n    ? [a, b]\n    : 1\n"), 7, "unhashable key"),
        (("    facet: mllm\n", "    facet: mllm\n    1: x\n"), 5, "unknown key(s) 1 in tag"),
    ],
)
def test_a_nan_threshold_or_an_odd_key_is_one_line_with_file_and_line(tmp_path, edit, line, message):
    path = tmp_path / "taxonomy.yml"
    path.write_text((BAD / "good.yml").read_text().replace(*edit, 1))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}:{line}: .*{re.escape(message)}"):
        load_taxonomy(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("categories: [cs.CV]\n? [a, b]\n: 1\n", "line 2: invalid YAML: found unhashable key"),
        ("categories: [cs.CV]\n1: x\nwindow: 3\n", "unknown key"),
    ],
)
def test_an_odd_key_in_queries_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "queries.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        load_queries(path)
    assert str(err.value).startswith(str(path))


def test_a_mistyped_tag_gets_did_you_mean(taxonomy):
    with pytest.raises(ConfigError, match=r"unknown tag 'haluccination' \(did you mean hallucination\?\)"):
        taxonomy.resolve("haluccination")
    with pytest.raises(ConfigError, match=r"did you mean M-CoT\?"):
        taxonomy.resolve("m-cott")
