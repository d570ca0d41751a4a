"""The README's table of which methods apply to which model family is the registry's."""

import re
from pathlib import Path

from gradeclip_lib.methods.registry import FAMILIES, methods_of

README = Path(__file__).resolve().parents[1] / "README.md"
COLUMNS = {"CLIP ViT": "clip_vit", "ResNet CLIP": "clip_resnet", "SigLIP": "clip_siglip", "EVA-02": "clip_eva",
           "timm ViT classifier": "timm_vit", "BLIP": "blip", "CLIP text": "clip_text"}


def test_the_support_table_is_the_registry():
    table = re.search(r"<!-- support-table -->\n(.*?)<!-- /support-table -->", README.read_text(), re.S).group(1)
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in table.strip().splitlines()]
    header, body = rows[0], rows[2:]
    families = [COLUMNS[name] for name in header[1:]]
    assert sorted(families) == sorted(FAMILIES)  # every family has a column
    said = {(row[0].strip("`"), family) for row in body for family, cell in zip(families, row[1:]) if cell == "yes"}
    registered = {(name, family) for family in FAMILIES for name in methods_of(family)}
    assert said == registered
