"""Deliberately broken SUTs (QA, 变异体): a collector or platform broken in exactly one known
way, so every acceptance check is shown to fail on the failure it guards against
(docs/sut.md). They live here, outside the reference products: collector/ and central/ know
nothing of them. `collector` wraps the reference collector at its seams; `platform` is the
reference platform started with options that break it."""
