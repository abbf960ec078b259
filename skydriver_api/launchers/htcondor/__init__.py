"""HTCondor launcher: each worker cluster of a scan is one HTCondor cluster submitted with ``htcondor2``.

Workers run in the *container* universe (an Apptainer SIF, e.g. on CVMFS, or a ``docker://`` image)
with ``request_cpus/memory/disk`` from the scan request, the scan priority as job priority, and a
maximum runtime enforced by ``periodic_remove``. Every job carries ``SkyDriverScanId`` (and
``SkyDriverCluster``) in its ad: status queries and abort (``condor_rm`` by constraint) use it, so jobs
are found even when their handles were never stored. Add-workers submits another cluster.

Credentials never appear in the job ad (``condor_q -l`` shows it to every user of the pool): the
per-scan token, the scan's *worker* broker URL (its own identity, never the server's nor the shared
administrator URL) and the scan's signing key are written to three 0600 files (``scan-token``,
``broker-url``, ``scan-key``) in a 0700 per-scan directory under ``SKYDRIVER_CONDOR_SUBMIT_DIR`` and
shipped with ``transfer_input_files``; abort and ``forget`` delete them. The worker entrypoint in the
image (``containers/skydriver-condor-worker``) points ``SKYDRIVER_SCAN_TOKEN_FILE``,
``SKYDRIVER_BROKER_URL_FILE`` and ``SKYDRIVER_SCAN_KEY_FILE`` at their absolute paths before
``exec skydriver worker``; the worker reads the files itself, no secret becomes an environment value.

The scan server does not run on HTCondor (it needs MongoDB and a stable address): ``launch_server``,
and the server half of ``status`` and ``abort``, go to a second launcher chosen by
``SKYDRIVER_CONDOR_SERVER_LAUNCHER`` (``kubernetes``: the usual deployment, API and server in the
Helm release, workers on the grid; or ``local``), built through the launcher registry.

One concern per module:

* :mod:`.settings`: :class:`HTCondorSettings` (``SKYDRIVER_CONDOR_*``);
* :mod:`.submit`: the submit description and the credential files (no schedd call);
* :mod:`.schedd`: every schedd call (locate, submit, query, remove) and the errors they raise;
* :mod:`.status`: a worker's state from its job ad (pure);
* :mod:`.launcher`: :class:`HTCondorLauncher`, composing them.

Construct with ``HTCondorLauncher()``: it reads :class:`HTCondorSettings`. Tests pass ``settings=``,
a ``server_launcher=`` and a ``schedd_factory=`` (schedd name or ``None`` -> ``htcondor2.Schedd``).
"""

from skydriver_api.launchers.htcondor.launcher import HTCondorLauncher
from skydriver_api.launchers.htcondor.settings import HTCondorSettings

__all__ = ["HTCondorLauncher", "HTCondorSettings"]
