"""Infrastructure, the lowest layer (it imports no other part of labkit): quick mode's CPU
pins (:mod:`~labkit.infra.cpu_pins`), mode, seeds and device (:mod:`~labkit.infra.runtime`),
the experiments' settings base (:mod:`~labkit.infra.settings`), the resumable result store
(:mod:`~labkit.infra.store`), the runner of sweeps (:mod:`~labkit.infra.runner`) and the data
sources (:mod:`~labkit.infra.data`)."""
