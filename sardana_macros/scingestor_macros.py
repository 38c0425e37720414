"""SciCat measurement macros and the auto-grouping post-scan hook.

The macros write measurement commands into the dataset list file of the scan
directory (``ScanDir``), which the SciCat ingestor follows:

* ``start_measurement [name] [scandir] [conf]`` - close the current
  measurement of the directory (if any) and start ``name``;
* ``make_measurement name [scandir] [conf]`` - as ``start_measurement`` and
  add the last scan to the new measurement;
* ``update_measurement`` - send the current measurement now, keep it open;
* ``stop_measurement`` - close the current measurement and send it;
* ``show_current_measurement`` - print the current measurement (and the
  ingestor device's state);
* ``scicat_post_scan`` - post-scan hook listing the finished scan and, with
  ``SciCatAutoGrouping``, grouping it; register it with
  ``defgh scicat_post_scan post-scan``.

When ``SciCatIngestorDevice`` names a ``SciCatIngestor`` Tango device the
measurement macros call its commands; otherwise, or when the device cannot be
reached or refuses, they append the same records to the list file themselves.
``conf`` (optional) selects that route for one call: a device name, or
``file`` to write the list file directly.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, cast

import tango
from sardana.macroserver.macro import Macro, Type
from sardana.macroserver.msexception import UnknownEnv

from scingestor import listproto

try:  # loaded from the MacroPath directory: the helper is a sibling module
    import scicat_records as records
except ImportError:  # imported as part of the installed package
    from sardana_macros import scicat_records as records

__all__ = [
    "start_measurement",
    "make_measurement",
    "update_measurement",
    "stop_measurement",
    "show_current_measurement",
    "scicat_post_scan",
]

__docformat__ = "restructuredtext"

logger = logging.getLogger(__name__)

DEVICE_VAR = "SciCatIngestorDevice"
FILE_ROUTE = "file"
ENV_NAMES = (
    "ScanDir", "ScanFile", "ScanID", "ScanNames", "ScanNamesNoMetadata", "ScanNamesNoGrouping",
    "AppendSciCatDataset", "NXSAppendSciCatDataset", "SciCatAutoGrouping",
    records.MEASUREMENTS_VAR, "BeamtimeFilePath", "BeamtimeFilePrefix", "BeamtimeFileExt",
    "SciCatDatasetListFileLocal", "SciCatDatasetListFilePrefix", "SciCatDatasetListFileExt",
    "NeXusSelectorDevice", "NeXusSkipAcquisitionModes", DEVICE_VAR,
)


# ------------------------------------------------------------------------ helpers
def _environment(macro: Macro) -> Dict[str, Any]:
    """The environment variables the SciCat records depend on (unset ones absent)."""
    env: Dict[str, Any] = {}
    for name in ENV_NAMES:
        try:
            env[name] = macro.getEnv(name)
        except UnknownEnv:
            continue
    return env


def _reason(exc: BaseException) -> str:
    if isinstance(exc, tango.DevFailed) and exc.args:
        return str(getattr(exc.args[0], "desc", exc)).strip().splitlines()[0]
    return str(exc)


def _write(macro: Macro, env: Dict[str, Any], directory: str,
           decide: Callable[[str], Sequence[str]]) -> Optional[records.Appended]:
    """Append ``decide(current measurement)`` to the list file under its lock; report errors.

    The current measurement is replayed from the list (docs/sardana.md); the
    ``SciCatMeasurements`` mirror is refreshed. ``None`` after an error.
    """
    try:
        path = records.list_file(env)
        done = records.update(path, decide)
    except records.RecordError as exc:
        macro.error("SciCat list file not written: %s", exc)
        return None
    for line in done.lines:
        macro.output("Appending '%s' to %s", line, path)
    _mirror(macro, env, directory, done.after)
    return done


def _mirror(macro: Macro, env: Dict[str, Any], directory: str, current: str) -> None:
    """Write ``SciCatMeasurements`` as a mirror of the list (never read for decisions)."""
    table = records.mirror(env, directory, current)
    if table != env.get(records.MEASUREMENTS_VAR):
        macro.setEnv(records.MEASUREMENTS_VAR, table)


def _current(macro: Macro, env: Dict[str, Any]) -> Optional[Tuple[str, str]]:
    """``(list file, current measurement)`` replayed from the list; ``None`` after an error."""
    try:
        path = records.list_file(env)
        return path, records.current_measurement(path)
    except records.RecordError as exc:
        macro.error("%s", exc)
        return None


def _device(macro: Macro, env: Dict[str, Any], conf: str = "",
            fallback: str = "writing the list file directly") -> Optional[Any]:
    """The reachable ingestor device chosen by ``conf`` / ``SciCatIngestorDevice``."""
    name = (conf or "").strip() or str(env.get(DEVICE_VAR) or "").strip()
    if not name or name == FILE_ROUTE:
        return None
    try:
        device = tango.DeviceProxy(name)
        device.ping()
    except tango.DevFailed as exc:
        macro.warning("SciCat ingestor device '%s' cannot be reached (%s): %s",
                      name, _reason(exc), fallback)
        return None
    return device


def _device_command(macro: Macro, device: Any, directory: str, command: str,
                    *args: str) -> Tuple[bool, Any]:
    """Run ``<command>In([directory, *args])`` on the device; ``(ok, result)``.

    The directory travels with the command (docs/tango.md "Commands"): the device's
    ``ScanDir`` attribute is neither read nor written, so other clients cannot change it
    under our feet.
    """
    try:
        result = device.command_inout(command, [directory, *args])
    except tango.DevFailed as exc:
        macro.warning("SciCat ingestor device '%s': %s failed (%s): "
                      "writing the list file directly", device.dev_name(), command, _reason(exc))
        return False, None
    macro.debug("%s %s -> %r", device.dev_name(), command, result)
    return True, result


def _selector(macro: Macro, env: Dict[str, Any]) -> Tuple[bool, str]:
    """``(appendentry, entryname)`` from ``NeXusSelectorDevice`` (defaults on failure)."""
    name = str(env.get("NeXusSelectorDevice") or "").strip()
    if not name:
        return False, "scan"
    try:
        selector = tango.DeviceProxy(name)
        appendentry = bool(selector.read_attribute("appendentry").value)
        variables = json.loads(selector.read_attribute("configvariables").value or "{}")
        entryname = str(variables.get("entryname") or "scan")
    except (tango.DevFailed, ValueError, AttributeError) as exc:
        macro.warning("NeXus selector '%s' cannot be read (%s): assuming one scan per file",
                      name, _reason(exc))
        return False, "scan"
    return appendentry, entryname


def _prepare(macro: Macro, scandir: str = "") -> Optional[Tuple[Dict[str, Any], str]]:
    """Environment and list directory; ``None`` after an error."""
    if scandir.strip():
        macro.setEnv("ScanDir", records.normalise_dir(scandir.strip()))
    env = _environment(macro)
    try:
        directory = records.record_dir(env)
    except records.RecordError as exc:
        macro.error("%s", exc)
        return None
    return env, directory


def _prepare_current(macro: Macro) -> Optional[Tuple[Dict[str, Any], str, str]]:
    """As :func:`_prepare`, plus the directory's current measurement ('' if none)."""
    prepared = _prepare(macro)
    if prepared is None:
        return None
    env, directory = prepared
    found = _current(macro, env)
    if found is None:
        return None
    return env, directory, found[1]


def _start(macro: Macro, name: str, scandir: str, conf: str,
           with_last_scan: bool) -> None:
    """Common part of ``start_measurement`` and ``make_measurement``."""
    if name.strip():
        try:
            name = records.check_name(name)
        except records.RecordError as exc:
            macro.error("%s", exc)
            return
    elif with_last_scan:
        macro.error("make_measurement needs a measurement name")
        return
    prepared = _prepare(macro, scandir)
    if prepared is None:
        return
    env, directory = prepared
    found = _current(macro, env)
    if found is None:
        return
    old = found[1]
    if not name and not old:
        macro.output("No measurement is open in '%s': nothing to stop", directory)
        return
    done = False
    device = _device(macro, env, conf)
    if device is not None:
        if name:
            done, _ = _device_command(macro, device, directory, "StartMeasurementIn", name)
        else:
            done, result = _device_command(macro, device, directory, "StopMeasurementIn")
            old = result or old
        # the last scan is known exactly here (ScanFile/ScanID); the device's
        # MakeMeasurementIn would take the last scan of the list, maybe another one
        if done and with_last_scan:
            lines = _last_scan_lines(macro, env)
            if lines and _write(macro, env, directory, lambda _current: lines) is None:
                return
        if done:
            after = _current(macro, env)
            if after is not None:
                _mirror(macro, env, directory, after[1])
    if not done:
        extra = _last_scan_lines(macro, env) if with_last_scan else []
        written = _write(macro, env, directory,
                         lambda current: listproto.start_lines(current, name) + extra)
        if written is None:
            return
        old = written.before
    if old:
        macro.output("Measurement '%s' in '%s' stopped", old, directory)
    if name:
        macro.output("Measurement '%s' in '%s' started", name, directory)


def _last_scan_lines(macro: Macro, env: Dict[str, Any]) -> List[str]:
    """The re-ingest line of the last scan for ``make_measurement`` (no auto grouping)."""
    appendentry, entryname = _selector(macro, env)
    try:
        lines = records.dataset_lines(env, reingest=True, appendentry=appendentry,
                                      entryname=entryname, grouping=False)
    except records.RecordError as exc:
        macro.warning("The last scan is not added: %s", exc)
        return []
    if not lines:
        macro.warning("The last scan is not added: neither AppendSciCatDataset nor "
                      "NXSAppendSciCatDataset is set, or ScanFile is empty")
    return lines


# ------------------------------------------------------------------------- macros
class _StartMacro:
    """Parameters and ``run`` of ``start_measurement`` and ``make_measurement``.

    Not a ``Macro`` subclass, so that Sardana does not list it as a macro of its own;
    the macros combine it with ``Macro``.
    """

    #: Whether the last scan is added to the new measurement.
    with_last_scan = False

    param_def = [
        ["name", Type.String, "", "measurement name (no spaces)"],
        ["scandir", Type.String, "", "scan directory (sets ScanDir)"],
        ["conf", Type.String, "", "SciCatIngestor device name, or 'file'"],
    ]

    def run(self, name: str, scandir: str, conf: str) -> None:
        _start(cast(Macro, self), name, scandir, conf, with_last_scan=self.with_last_scan)


class start_measurement(_StartMacro, Macro):
    """Start a SciCat measurement in the scan directory.

    The measurement currently open in the directory (if any) is closed and
    sent first.  Without a name only that closing happens.  ``scandir``, when
    given, becomes the new ``ScanDir``.  ``conf`` chooses the route for this
    call: a SciCatIngestor device name, or ``file`` to write the dataset list
    file directly (default: the ``SciCatIngestorDevice`` environment variable,
    else the file).
    """


class make_measurement(_StartMacro, Macro):
    """Start a SciCat measurement and add the last scan to it.

    As ``start_measurement``; the last scan (``ScanFile``/``ScanID``) is listed
    again with a ``:<time>`` suffix so the ingestor re-processes it inside the
    new measurement (through the ingestor device: ``StartMeasurementInDir``,
    then this line).
    """

    with_last_scan = True


def _command_or_write(macro: Macro, env: Dict[str, Any], directory: str, command: str,
                      decide: Callable[[str], Sequence[str]]) -> bool:
    """Run ``command`` on the ingestor device, else append ``decide(current)`` to the list.

    False when neither worked (the list file could not be written).
    """
    device = _device(macro, env)
    if device is not None:
        done, _ = _device_command(macro, device, directory, command)
        if done:
            found = _current(macro, env)
            if found is not None:
                _mirror(macro, env, directory, found[1])
            return True
    return _write(macro, env, directory, decide) is not None


def _update_lines(current: str) -> List[str]:
    if not current:
        raise records.RecordError("no measurement is open any more")
    return listproto.update_lines(current)


class update_measurement(Macro):
    """Send the current SciCat measurement of the scan directory now and keep it open."""

    def run(self) -> None:
        prepared = _prepare_current(self)
        if prepared is None:
            return
        env, directory, current = prepared
        if not current:
            self.warning("No measurement is open in '%s': nothing to update", directory)
            return
        if _command_or_write(self, env, directory, "UpdateMeasurementIn", _update_lines):
            self.output("Measurement '%s' in '%s' updated", current, directory)


class stop_measurement(Macro):
    """Close the current SciCat measurement of the scan directory and send it."""

    def run(self) -> None:
        prepared = _prepare_current(self)
        if prepared is None:
            return
        env, directory, current = prepared
        if not _command_or_write(self, env, directory, "StopMeasurementIn",
                                 listproto.stop_lines):
            return
        if current:
            self.output("Measurement '%s' in '%s' stopped", current, directory)
        else:
            self.output("No measurement was open in '%s'", directory)


class show_current_measurement(Macro):
    """Show the current SciCat measurement of the scan directory.

    With ``SciCatIngestorDevice`` set, the device's queue length, last
    ingested scan and last error are shown as well.
    """

    def run(self) -> None:
        prepared = _prepare_current(self)
        if prepared is None:
            return
        env, directory, current = prepared
        if current:
            self.output("Current Measurement for '%s' is '%s'", directory, current)
        else:
            self.output("Current Measurement for '%s' not set", directory)
        device = _device(self, env, fallback="no ingestor status")
        if device is None:
            return
        try:
            values = {
                attr: device.read_attribute(attr).value
                for attr in ("QueueLength", "LastIngestedScan", "LastError")
            }
        except tango.DevFailed as exc:
            self.warning("SciCat ingestor device '%s' cannot be read: %s",
                         device.dev_name(), _reason(exc))
            return
        self.output("SciCat ingestor '%s': queue length %s, last ingested scan '%s', "
                    "last error '%s'", device.dev_name(), values["QueueLength"],
                    values["LastIngestedScan"] or "", values["LastError"] or "")


class scicat_post_scan(Macro):
    """Post-scan hook: list the finished scan for SciCat and group it.

    Register it once with ``defgh scicat_post_scan post-scan``.  The scan line
    is appended when ``AppendSciCatDataset`` is true (NeXus scans are left to
    the NeXus writer when ``NXSAppendSciCatDataset`` is true).  With
    ``SciCatAutoGrouping`` the scan is put into the measurement named after
    the scan file's base name, which is sent after every scan.
    """

    def run(self) -> None:
        env = _environment(self)
        if not (records.is_true(env.get("AppendSciCatDataset"))
                or records.is_true(env.get("NXSAppendSciCatDataset"))):
            return
        appendentry, entryname = _selector(self, env)
        try:
            directory = records.record_dir(env)
            due = records.dataset_lines(env, appendentry=appendentry, entryname=entryname,
                                        now=lambda: 0.0)
        except records.RecordError as exc:
            self.error("SciCat list file not written: %s", exc)
            return
        if not due:  # nothing to list (the decision does not depend on the list)
            return
        try:
            path = records.list_file(env)
            done = records.update(path, lambda current: records.dataset_lines(
                env, current, appendentry=appendentry, entryname=entryname))
        except records.RecordError as exc:
            self.error("SciCat list file not written: %s", exc)
            return
        if not done.lines:
            return
        self.output("Appending '%s' to %s", "\n".join(done.lines), path)
        if done.before != done.after:
            _mirror(self, env, directory, done.after)
