#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Plays systemd's side of sd_notify(): binds the datagram socket SOCKET (to pass as $NOTIFY_SOCKET) and
appends each notification to LOG, one line each, its assignments separated by " | ".
Usage: notify-listener.py SOCKET LOG"""
import socket
import sys

sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sys.argv[1])
with open(sys.argv[2], "a", encoding="utf-8") as log:
    while True:
        data = sock.recv(65536)
        log.write(data.decode(errors="replace").strip().replace("\n", " | ") + "\n")
        log.flush()
