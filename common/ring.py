"""The last N bytes of a stream, kept on disk, never whole in memory: a file of at most N bytes used as a
ring. The API keeps a deleted container's output this way (observe/logs.py), a satellite the output of
the service slots it removes (satellite/connector/slot_logs.py)."""
PIECE = 64 * 1024


def keep_last(chunks, keep, ring):
    """Write the last `keep` bytes of `chunks` into `ring` (a file of at most `keep` bytes, used as a ring);
    (total bytes seen, where the oldest kept byte is)."""
    total = 0
    for chunk in chunks:
        rest = chunk[-keep:]
        total += len(chunk) - len(rest)  # bytes no ring could keep
        while rest:
            at = total % keep
            ring.seek(at)
            part = rest[:keep - at]
            ring.write(part)
            total += len(part)
            rest = rest[len(part):]
    return total, (total % keep if total > keep else 0)


def pieces(ring, total, start, keep, piece=PIECE):
    """The kept bytes in order, `piece` at a time."""
    size = min(total, keep)
    done = 0
    while done < size:
        ring.seek((start + done) % keep)
        part = ring.read(min(piece, size - done, keep - (start + done) % keep))
        done += len(part)
        yield part
