"""Cheat detectors of the reference platform (作弊预警), one module per detector.

    data (StationData: arrays per stream up to a checkpoint)
      → detectors (registry.DETECTORS: pure `evaluate(data, ctx) -> [AlertProposal]`)
      → runner.evaluate_station (raise alerts, record detection_progress)
      ← service.DetectionService (thread in `forecourt platform`: watermark → checkpoint)

Modules: base (proposal, settings, context, day helpers), data, wetstock (per-tank interval
series), watermark, runner, service, registry; detectors: tank_variance,
nozzle_attribution, idle_loss, continuity, monotonicity, price, identity, delivery,
gauge_plausibility. Specification: docs/detectors.md.
"""
