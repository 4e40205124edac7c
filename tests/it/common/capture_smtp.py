#!/usr/bin/env python3
"""ticketgate test harness: a capture SMTP server (aiosmtpd) with run-time fault injection.

Started by tests/it/common/capture.rs; not meant for production. It listens on 127.0.0.1 only:
  --port P       SMTP; STARTTLS offered; AUTH PLAIN/LOGIN only after STARTTLS
  --tls-port P   SMTPS (implicit TLS); AUTH PLAIN/LOGIN
Each accepted message is stored in --dir as NNNNNN.eml (the bytes as received) and then
NNNNNN.json (the envelope); both are written by atomic rename, the .json last, so a message is
complete once its .json exists. Numbering continues after a restart on the same directory.

Faults: --faults FILE is re-read at every step; one rule per line, first match wins:
  tempfail STAGE [N]    421 at CONNECT/EHLO, 451 at MAIL/RCPT/DATA, 454 at AUTH
  permfail STAGE [N]    554 at CONNECT/EHLO/DATA, 550 at MAIL/RCPT, 535 at AUTH
  disconnect STAGE [N]  hang up without a reply
  delay STAGE SECONDS   wait before handling the stage
  refuse                close the listening sockets (connections are refused) until removed
STAGE is CONNECT, EHLO, STARTTLS, AUTH, MAIL, RCPT or DATA (DATA = after the message was
received, before the reply). A rule with a count N removes itself after N uses.
The file `listening` next to the faults file says "yes" or "no"; `ready` holds the PID once
the server first listens.
"""

import argparse
import asyncio
import base64
import json
import os
import ssl
import sys
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

STAGES = {"CONNECT", "EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA"}
CODES = {
    "tempfail": {"CONNECT": "421 4.3.2 try later", "EHLO": "421 4.3.2 try later",
                 "AUTH": "454 4.7.0 temporary authentication failure"},
    "permfail": {"CONNECT": "554 5.3.2 no service", "EHLO": "554 5.3.2 no service",
                 "MAIL": "550 5.7.1 sender refused", "RCPT": "550 5.1.1 recipient refused",
                 "AUTH": "535 5.7.8 authentication refused"},
}
DEFAULT_CODE = {"tempfail": "451 4.3.0 injected temporary failure", "permfail": "554 5.6.0 injected permanent failure"}


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


class Faults:
    """The rules file: read on every use, so tests switch behaviour without a restart."""

    def __init__(self, path):
        self.path = path

    def lines(self):
        try:
            with open(self.path) as f:
                return [line.split() for line in f.read().splitlines() if line.strip()]
        except FileNotFoundError:
            return []

    def refusing(self):
        return any(words[0] == "refuse" for words in self.lines())

    def take(self, stage):
        """The action for STAGE, if a rule matches; counted rules are used up."""
        rules = self.lines()
        for i, words in enumerate(rules):
            if len(words) < 2 or words[1].upper() != stage:
                continue
            action = words[0]
            if action == "delay":
                return action, float(words[2]) if len(words) > 2 else 1.0
            if len(words) > 2:
                left = int(words[2]) - 1
                if left > 0:
                    rules[i] = [words[0], words[1], str(left)]
                else:
                    del rules[i]
                write_atomic(self.path, "".join(" ".join(w) + "\n" for w in rules).encode())
            return action, None
        return None, None


class Store:
    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        numbers = [int(n.split(".")[0]) for n in os.listdir(directory) if n.endswith(".json")]
        self.seq = max(numbers, default=0)

    def save(self, session, envelope, tls):
        self.seq += 1
        name = "%06d" % self.seq
        write_atomic(os.path.join(self.dir, name + ".eml"), envelope.original_content)
        meta = {
            "seq": self.seq,
            "eml": name + ".eml",
            "received_at": time.time(),
            "peer": list(session.peer) if session.peer else None,
            "helo": session.host_name,
            "mail_from": envelope.mail_from,
            "mail_options": envelope.mail_options,
            "rcpt_tos": envelope.rcpt_tos,
            "rcpt_options": envelope.rcpt_options,
            "auth_login": session.login_data.decode() if isinstance(session.login_data, bytes) else session.login_data,
            "tls": tls is not None,
            "tls_version": tls,
            "size": len(envelope.original_content),
        }
        write_atomic(os.path.join(self.dir, name + ".json"), json.dumps(meta, indent=1).encode())


class CaptureSMTP(SMTP):
    """aiosmtpd's SMTP with a fault check in front of every stage."""

    def __init__(self, handler, faults, implicit_tls, **kw):
        super().__init__(handler, **kw)
        self.faults = faults
        self.implicit_tls = implicit_tls

    def tls_version(self):
        obj = self.transport.get_extra_info("ssl_object") if self.transport else None
        return obj.version() if obj else None

    async def fault(self, stage):
        """True when the stage was answered (or the line cut) by an injected fault."""
        action, arg = self.faults.take(stage)
        if action == "delay":
            await asyncio.sleep(arg)
            return False
        if action == "disconnect":
            self.transport.abort()
            return True
        if action in CODES:
            await self.push(CODES[action].get(stage, DEFAULT_CODE[action]))
            if stage in ("CONNECT", "EHLO"):
                self.transport.close()
            return True
        return False

    async def _handle_client(self):
        if await self.fault("CONNECT"):
            return
        await super()._handle_client()

    async def smtp_EHLO(self, arg):
        if not await self.fault("EHLO"):
            await super().smtp_EHLO(arg)

    async def smtp_HELO(self, arg):
        if not await self.fault("EHLO"):
            await super().smtp_HELO(arg)

    async def smtp_STARTTLS(self, arg):
        if not await self.fault("STARTTLS"):
            await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg):
        if not await self.fault("AUTH"):
            await super().smtp_AUTH(arg)

    async def smtp_MAIL(self, arg):
        if not await self.fault("MAIL"):
            await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg):
        if not await self.fault("RCPT"):
            await super().smtp_RCPT(arg)


class Handler:
    def __init__(self, store, faults):
        self.store = store
        self.faults = faults

    async def handle_DATA(self, server, session, envelope):
        action, arg = self.faults.take("DATA")
        if action == "delay":
            await asyncio.sleep(arg)
        elif action == "disconnect":
            server.transport.abort()
            return "421 4.4.2 gone"
        elif action in CODES:
            return CODES[action].get("DATA", DEFAULT_CODE[action])
        self.store.save(session, envelope, server.tls_version())
        return "250 2.0.0 Ok: stored"


def make_authenticator(users):
    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and users.get(auth_data.login.decode()) == auth_data.password.decode()
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return authenticate


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls-port", type=int)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--faults", required=True)
    p.add_argument("--user", action="append", default=[], help="login:password")
    p.add_argument("--require-auth", action="store_true")
    p.add_argument("--require-starttls", action="store_true")
    a = p.parse_args()

    users = dict(u.split(":", 1) for u in a.user)
    faults = Faults(a.faults)
    store = Store(a.dir)
    handler = Handler(store, faults)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(a.cert, a.key)
    loop = asyncio.get_running_loop()
    state_dir = os.path.dirname(os.path.abspath(a.faults))

    def factory(implicit):
        return lambda: CaptureSMTP(
            handler, faults, implicit,
            hostname="capture.example.test",
            tls_context=None if implicit else tls,
            require_starttls=a.require_starttls and not implicit,
            auth_required=a.require_auth,
            # on the implicit-TLS port aiosmtpd cannot tell the line is encrypted
            auth_require_tls=not implicit,
            authenticator=make_authenticator(users),
            loop=loop,
        )

    servers = []

    async def open_all():
        servers.append(await loop.create_server(factory(False), "127.0.0.1", a.port, reuse_address=True))
        if a.tls_port:
            servers.append(await loop.create_server(factory(True), "127.0.0.1", a.tls_port, ssl=tls, reuse_address=True))
        write_atomic(os.path.join(state_dir, "listening"), b"yes\n")

    async def close_all():
        # no wait_closed(): from Python 3.12 on it also waits for open client connections
        for s in servers:
            s.close()
        servers.clear()
        write_atomic(os.path.join(state_dir, "listening"), b"no\n")

    await open_all()
    write_atomic(os.path.join(state_dir, "ready"), b"%d\n" % os.getpid())
    print("capture: listening on 127.0.0.1:%d (tls %s)" % (a.port, a.tls_port), flush=True)
    while True:
        await asyncio.sleep(0.02)
        refusing = faults.refusing()
        if refusing and servers:
            await close_all()
        elif not refusing and not servers:
            await open_all()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
