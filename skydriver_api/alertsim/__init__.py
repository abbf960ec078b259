"""The alert-stream simulator: ``skydriver alertsim run STREAM.yaml`` and ``alertsim check PROVENANCE``.

A stream is described in YAML (:mod:`.spec`): rate and duration, bursts, the seed, simulated tracks
at alert-like energies, initial and update revisions, duplicates, corrupt messages of several kinds,
and disruptions (the consumer killed and restarted, the broker's connections dropped). :mod:`.plan`
turns it into a deterministic list of messages, :mod:`.send` sends them to Kafka or the REST API and
writes a provenance file (the stream, the seed, every message with its identity and what it should
produce), and :mod:`.check` compares that file with what the service stored and published.
"""

from skydriver_api.alertsim.check import CheckReport, check_provenance
from skydriver_api.alertsim.send import run_stream
from skydriver_api.alertsim.spec import AlertSimError, StreamSpec, load_stream

__all__ = ["AlertSimError", "CheckReport", "StreamSpec", "check_provenance", "load_stream", "run_stream"]
