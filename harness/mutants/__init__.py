"""Mutation testing of the artifacts under certification: how strong is the certificate?

`python -m harness.mutants` (`nox -s mutants`) generates mutants of every deployable artifact by
operator (`generate.py`), runs each through the tiers in a scratch copy (`run.py`), and writes
reports/mutation.md and reports/mutation.json (`report.py`). A mutant is killed only when the
certificate of the copy carrying it marks a claim FAIL.

Artifacts and operators:

- PromQL of the recording and alert rules, of the probe's query templates
  (`probe/settings.py` DEFAULT_*_QUERY) and of the dashboard's panels, parsed with
  `promql-parser` (`promql.py`): threshold up and down, comparison flipped, range halved and
  doubled, aggregation swapped (max/sum/min/avg, and the *_over_time functions), a label matcher
  dropped or its value changed, clamp_min/clamp_max removed, an `or` branch removed; and each
  alert's `for:` halved and doubled.
- alertmanager.yml: matcher values changed and matchers dropped (routes and inhibit rules),
  inhibit `equal` labels dropped or added, source and target swapped, group_by changed,
  group_wait/group_interval/repeat_interval/resolve_timeout halved and doubled, receivers
  swapped, send_resolved off.
- compose.yaml: each probe setting up, down (numbers), changed (text) and removed; the probe's
  limits up, down and removed; its restart policy and the app anchor's; a published probe port;
  the probe on the host-reachable network; the consumers' healthcheck target, timers and
  retries. stack/k8s/ is generated from compose.yaml, so the fast tier runs the Kubernetes tests
  too: a mutant the generator follows shows as drift.
- The probe's code (probe/checks.py, probe/readiness.py): comparison operators flipped, `and`
  and `or` swapped, `if`/`while` guards negated. This is a small `ast` mutator rather than
  mutmut or cosmic-ray: both decide a kill by the test command's exit status (here only a FAIL
  claim in the certificate is a kill), cosmic-ray mutates the checkout in place (other people
  work in it), mutmut 3 runs its own trampolined copy of the code under its own test runner, and
  neither would share the scratch copies, tiers and reports of the artifact mutants.

Reviewed equivalent mutants are listed in stack/mutants-equivalent.yml (`equivalents.py`).
"""
