#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The introspection XML in dbus/ against what the running daemons report.

  introspection.py check DIR SERVICE...   "ok - ..."/"not ok - ..." lines; exit 1 when they differ
  introspection.py write DIR SERVICE...   (re)writes DIR/<interface>.xml from the daemon

Every object of each SERVICE (busctl tree) is introspected (busctl introspect --xml-interface); every
interface named like the service (org.gpupass.agent1.*) must have DIR/<interface>.xml, and every such
file must match an interface a daemon exports. Both sides are normalised (element order kept, since
sd-bus reports members in vtable order; attributes, whitespace and comments do not count).
"""
import difflib
import glob
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

ATTRS = ("name", "type", "direction", "access", "value")
HEADER = """<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<!-- Generated from the running daemon: GPUPASS_WRITE_INTROSPECTION=1 meson test -C build introspection
     (see README, "Tests"). The test of that name fails when this file and the daemon differ. -->
"""


def busctl(*args):
    return subprocess.run(["busctl", "--system", *args], check=True, capture_output=True, text=True).stdout


def canonical(element, depth=0):
    """One line per element, attributes in a fixed order: the form both sides are compared in."""
    attrs = "".join(f' {a}="{element.get(a)}"' for a in ATTRS if element.get(a) is not None)
    children = [c for c in element if isinstance(c.tag, str)]
    pad = "  " * depth
    if not children:
        return f"{pad}<{element.tag}{attrs}/>\n"
    inner = "".join(canonical(c, depth + 1) for c in children)
    return f"{pad}<{element.tag}{attrs}>\n{inner}{pad}</{element.tag}>\n"


def exported_interfaces(services):
    """interface name -> (canonical text, object path it was read from), for the services' own interfaces."""
    found = {}
    for service in services:
        for path in busctl("tree", "--list", service).split():
            root = ET.fromstring(busctl("introspect", "--xml-interface", service, path))
            for iface in root.findall("interface"):
                name = iface.get("name")
                if not name.startswith(service + "."):
                    continue
                text = canonical(iface)
                if name in found and found[name][0] != text:
                    raise SystemExit(f"{name} differs between {found[name][1]} and {path}")
                found.setdefault(name, (text, path))
    return found


def file_interface(path):
    root = ET.parse(path).getroot()
    ifaces = root.findall("interface")
    if len(ifaces) != 1:
        raise SystemExit(f"{path}: expected one <interface>, found {len(ifaces)}")
    return ifaces[0].get("name"), canonical(ifaces[0])


MEMBER_COMMENT = re.compile(r'(<!--(?:(?!-->).)*-->)\s*\n\s*<(property|method|signal) name="([^"]+)"', re.S)


def keep_member_comments(path, body):
    """The hand-written comment above a member in the file being rewritten (what a property means, say) goes
    above the same member in the new text: the daemon's introspection has no comments to give."""
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        return body
    comments = {(m.group(2), m.group(3)): m.group(1) for m in MEMBER_COMMENT.finditer(old)}
    lines = []
    for line in body.splitlines(keepends=True):
        m = re.match(r'(\s*)<(property|method|signal) name="([^"]+)"', line)
        if m and (m.group(2), m.group(3)) in comments:
            lines.append(m.group(1) + comments[(m.group(2), m.group(3))] + "\n")
        lines.append(line)
    return "".join(lines)


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in ("check", "write"):
        sys.exit(__doc__)
    mode, directory, services = sys.argv[1], sys.argv[2], sys.argv[3:]
    found = exported_interfaces(services)
    if mode == "write":
        for name, (text, _) in sorted(found.items()):
            path = f"{directory}/{name}.xml"
            body = keep_member_comments(path, canonical(ET.fromstring(text), 1))
            with open(path, "w") as f:
                f.write(HEADER + "<node>\n" + body + "</node>\n")
            print(f"# wrote {path}")
    failures = 0
    files = sorted(glob.glob(f"{directory}/*.xml"))
    seen = set()
    for path in files:
        base = os.path.basename(path)[:-4]
        if not any(base.startswith(s + ".") for s in services):
            continue
        name, text = file_interface(path)
        seen.add(name)
        if name != base:
            failures += 1
            print(f"not ok - {path} describes {name}, not {base}")
        elif name not in found:
            failures += 1
            print(f"not ok - {name}: no object of {' '.join(services)} exports it")
        elif found[name][0] != text:
            failures += 1
            print(f"not ok - {name} drifted from {path} (daemon object {found[name][1]}):")
            for line in difflib.unified_diff(text.splitlines(), found[name][0].splitlines(), "file", "daemon",
                                             lineterm=""):
                print("#   " + line)
        else:
            print(f"ok - {name} as in {os.path.basename(path)}")
    for name in sorted(set(found) - seen):
        failures += 1
        print(f"not ok - {name} (on {found[name][1]}) has no {directory}/{name}.xml")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
