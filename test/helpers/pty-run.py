"""Runs a command in a pseudo-terminal, types the given keystrokes (each after the output so far
contains its cue), and prints everything the terminal showed. Used by tests of interactive commands.
Usage: pty-run.py <json: {"argv": [...], "steps": [[cue, keys], ...], "timeout": s}>"""
import json, os, pty, select, sys, time

spec = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(spec["argv"][0], spec["argv"])
out = b""
seen = 0  # each cue is looked for in what came after the previous one
deadline = time.time() + spec.get("timeout", 60)

def read_some(wait):
    """Appends what the terminal shows within `wait` seconds; "" if nothing came, None once it ended."""
    global out
    r, _, _ = select.select([fd], [], [], wait)
    if not r:
        return ""
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        return None
    if not chunk:
        return None
    out += chunk
    return chunk

def read_until(cue):
    global seen
    while cue.encode() not in out[seen:]:
        if time.time() > deadline:
            raise SystemExit("timed out waiting for %r; the terminal showed:\n%s" % (cue, out.decode("utf8", "replace")))
        if read_some(0.1) is None:
            raise SystemExit("the command ended before %r; the terminal showed:\n%s" % (cue, out.decode("utf8", "replace")))
    seen = out.index(cue.encode(), seen) + len(cue.encode())

def read_quiet(seconds):
    # The cue can show up in what the terminal redraws while the command is still busy (a prompt
    # redrawn as a line is edited): wait until it has said nothing for a while before typing on.
    last = time.time()
    while time.time() - last < seconds and time.time() < deadline:
        chunk = read_some(0.05)
        if chunk is None:
            return
        if chunk:
            last = time.time()

for cue, keys in spec["steps"]:
    read_until(cue)
    read_quiet(spec.get("quiet", 0.5))
    # Typed a key at a time, as a person would.
    for ch in keys:
        os.write(fd, ch.encode())
        time.sleep(0.01)
# Drain until the command ends.
while time.time() < deadline and read_some(0.1) is not None:
    pass
# Wait for it to end, at most until the deadline; a command that does not end is killed and said so.
status = None
while status is None:
    done, st = os.waitpid(pid, os.WNOHANG)
    if done:
        status = st
    elif time.time() > deadline:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        sys.stdout.write(out.decode("utf8", "replace"))
        sys.stderr.write("the command did not end by the deadline\n")
        sys.exit(2)
    else:
        time.sleep(0.05)
sys.stdout.write(out.decode("utf8", "replace"))
sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)
