"""The Numba kernel: an event-driven replica of Ramulator 2's GenericDDR controller tick.

Ramulator ticks every channel every DRAM cycle. A tick can only change the state when it issues
a command, and a command is legal at cycle ``t`` iff ``t >= ready`` for ``ready`` values that
only change when a command issues. So after each evaluation the kernel knows, per channel, the
earliest cycle at which any candidate becomes ready (``next_eval``) and which request wins then,
and jumps there; arrivals and refresh deadlines re-evaluate. The skipped cycles are exactly those
in which Ramulator issues nothing. The write-mode update (evaluated by Ramulator in each cycle the
read/write buffers are considered) is idempotent while the buffer sizes stay the same, so applying
it at the next evaluated cycle gives the same mode; an arrival that would flip it forces a full
evaluation.

Per evaluated tick ``T`` of a channel (Ramulator ``GenericDDRController::tick``):

1. the oldest timing-ready request of the *active buffer* (requests whose ACT was issued) issues;
2. else, if a refresh is pending (priority buffer), its command (PREab while a bank is open, then
   REFab) issues when ready and when it would not close a bank held by the active buffer; while it
   is pending nothing else is scheduled;
3. else the write mode is updated (enter at >= ``w_enter`` writes or no reads; leave at
   <= ``w_leave`` writes with reads waiting) and the scheduler picks, in the write buffer (write
   mode) or the read buffer, among the timing-ready requests (PREpb on a bank held by the active
   buffer is not eligible):

   - ``FRFCFS`` (Ramulator): the oldest, whatever its command;
   - ``row_hit_first`` (classic FR-FCFS, Rixner et al. 2000): the oldest row hit (RD/WR), else
     the oldest other command; a PREpb is also not eligible while an older hit to the bank's open
     row is queued in the same buffer (``FRFCFSRowHit`` of Ramulator adds only this second rule).

   Nothing issues if no eligible request is ready.

Data structures (why it is fast). Within one bank of one buffer, every row hit has the same ready
cycle (max of the channel/rank ready cycle of RD/WR and the bank's local one), and so has every
other request (the bank's ACT or PRE). So only the *oldest hit* and the *oldest non-hit* of each
bank can ever win. Each buffer keeps one age-ordered doubly linked list per bank, with the count
of hits and the slots of the oldest hit and non-hit; a scheduling decision is a branch-free
vectorizable min over the banks (two candidates each), not over the entries. The lists change only
on an arrival (append), on a removal (the next hit / non-hit is found by walking forward from the
removed entry) and when the bank's open row changes (ACT / PRE / PREab: the bank's lists are
re-classified). Per-bank tables hold the bank/bank-group part of the ready cycles (of a row hit
and of the bank's other command); a command refreshes only the entries whose inputs it changed
(its bank; RD / WR the row-hit tables of its bank group; ACT the other-command table of the group's
closed banks; PREab all banks; REFab none). The active buffer (at most one request per bank) is
a per-bank table too. "Oldest" is decided by arrival cycle (unique, as at most one request is
accepted per cycle), which is Ramulator's list order. Candidates are compared by a packed key
``(cycles until ready, saturated) << DSH | arrival << SH | bank << 1 | non-hit``, so one min over
the banks finds the winner now or at the earliest ready cycle (arrival cycles must stay below
``MAX_CYCLE`` = 2**46). A buffer whose requests are all non-hits (random traffic) or all hits
(streams) is scanned for that one kind only (a per-buffer hit count says which).

Memory layout (why it compiles well). All per-channel state lives in one int64 array ``S``: a
block of ``CS`` words per channel, every table at a compile-time offset ``X_...`` from the
channel base (per-bank tables have ``MAX_BANKS`` = 64 slots; at most 64 banks per channel are
supported), and the channel- and rank-level ready cycles of a command are one word (only their
maximum is ever read). Buffer entries are 8-word records in one array ``E`` (request index, row,
arrival, bank, list links, address, first-command flag), so issuing a command reads the request's
fields from its entry rather than from the cold per-request input arrays. Every index is cast to
unsigned (no negative-index wrap-around code), and there are no helper functions taking arrays
(Numba would update an atomic reference count per array and call). With a handful of array
pointers instead of ~60 arrays (two of them 2-D), LLVM keeps the hot loop in far fewer registers
and spills; this layout made the kernel 1.6x faster than the same algorithm over separate arrays.

Commands: ACT=0, PRE (per bank)=1, PREA (all banks)=2, RD=3, WR=4, REF (all banks)=5.

:func:`simulate_kernel` runs one controller (``p[P_CHANNELS]`` channels behind one frontend);
:func:`simulate_groups_kernel` runs several independent controllers, each with its own frontend,
queues, banks and refresh clock, in one call.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import leading_zeros, trailing_zeros

ACT, PRE, PREA, RD, WR, REF = 0, 1, 2, 3, 4, 5
NCMD = 6
INF = np.iinfo(np.int64).max // 4
MAX_CYCLE = 1 << 46
"""Arrival cycles must stay below this (they are packed into 64-bit scheduling keys)."""
STALL_REFRESHES = 64
"""Refresh intervals (nREFI, 3.9 us each) without any request accepted or completed while
requests wait, after which the kernel reports no progress (status 3). A request waits at most a
few hundred cycles plus one refresh when the controller works."""
# scheduling key of a candidate: (cycles until ready, saturated at DSAT) << DSH | non-hit flag
# (row-hit-first only) << 54 | arrival << SH | bank << 1 | non-hit; below INF = 2**61 - 1
DSH = 55
DSAT = 63
NONHIT_BIT = 54

# indices into the int64 parameter vector handed to the kernel (new entries go at the end)
(P_NBL, P_NCL, P_NCWL, P_NRCD, P_NRP, P_NRAS, P_NRC, P_NWR, P_NRTP, P_NPPD, P_NCCDS, P_NCCDL,
 P_NCCDS_WR, P_NCCDL_WR, P_NRRDS, P_NRRDL, P_NWTRS, P_NWTRL, P_NFAW, P_NRFC, P_NREFI,
 P_CHANNELS, P_BANKS, P_BANK_GROUPS, P_RQ, P_WQ, P_W_ENTER, P_W_LEAVE, P_REFRESH, P_CHAIN,
 P_ROW_HIT_FIRST, P_COUNT) = range(32)


# ---- per-channel state: one int64 block of CS words per channel in the state array ``S`` ----
# Offsets from the channel base ``c * CS`` are compile-time constants, so an access is one base
# register plus a constant; per-bank tables have MAX_BANKS slots, per-buffer tables 2 x MAX_BANKS
# (``w * MAX_BANKS + bank``, w = 0 read, 1 write buffer).
MAX_BANKS = 64
"""Banks per channel the kernel supports (one bit per bank in a 64-bit mask)."""
NBM = MAX_BANKS
X_CR = 0              # [NCMD] channel/rank-level ready cycle of each command
X_FAW = 8             # [4] the last four ACT cycles (tFAW window)
X_FAWPOS = 12
X_FAWCNT = 13
X_OPENCNT = 14        # open banks
X_AN = 15             # requests in the active buffer
X_QN = 16             # [2] requests in the read / write buffer
X_FREE = 18           # [2] head of the free entry-slot list of each buffer
X_PRIO = 20           # pending refreshes
X_WMODE = 21          # write mode (0 / 1)
X_NEXT = 22           # next evaluated tick of the channel
X_LASTDEP = 23        # last data return (forwarded reads queue behind it)
X_CSRC = 24           # cached decision: source (0 active, 2 read, 3 write; -1 none)
X_CJ = 25             # ... index (bank for the active buffer, entry slot for a buffer)
X_CCMD = 26           # ... command
X_NHIT = 27           # [2] entries of the read / write buffer that hit their bank's open row
X_BG = 32                       # [NBM][8] bank-group-level ready cycles
X_BANK = X_BG + NBM * 8         # [NBM][8] bank-level ready cycles
X_OPEN = X_BANK + NBM * 8       # [NBM] open row (-1 closed)
X_BACT = X_OPEN + NBM           # [NBM] 1 if the bank holds an active-buffer request
X_AKEY = X_BACT + NBM           # [NBM] its key arrival << sh | bank << 1 (INF: none)
X_AID = X_AKEY + NBM            # [NBM] its request index
X_AWR = X_AID + NBM             # [NBM] 1 if it is a write
X_AOFF = X_AWR + NBM            # [NBM] offset of its row-hit table in X_BKFN: 0 RD, NBM WR
X_ABANK = X_AOFF + NBM          # [NBM] banks of the active requests, [0, X_AN)
X_APOS = X_ABANK + NBM          # [NBM] position of a bank in X_ABANK
X_BKOTH = X_APOS + NBM          # [NBM] bank-local ready cycle of the bank's other command
X_BKOQ = X_BKOTH + NBM          # [NBM] that command: ACT (closed) or PRE (open)
X_RH = X_BKOQ + NBM             # [NBM] scratch of the exact passes
X_RO = X_RH + NBM               # [NBM] scratch of the exact passes
X_BKFN = X_RO + NBM             # [2][NBM] bank-local ready cycle of a row-hit RD / WR
X_LHEAD = X_BKFN + 2 * NBM      # [2][NBM] per-bank age-ordered list of each buffer: head slot
X_LTAIL = X_LHEAD + 2 * NBM     # tail slot
X_LN = X_LTAIL + 2 * NBM        # entries
X_LNH = X_LN + 2 * NBM          # entries that hit the open row
X_LH = X_LNH + 2 * NBM          # slot of the oldest hit (-1 none)
X_LO = X_LH + 2 * NBM           # slot of the oldest non-hit (-1 none)
X_HKEY = X_LO + 2 * NBM         # key of the oldest hit: arrival << sh | bank << 1 (INF: none)
X_OKEY = X_HKEY + 2 * NBM       # key of the oldest non-hit: ... | 1 (INF: none)
CS = X_OKEY + 2 * NBM
# ---- buffer entries: slot s of buffer w of channel c is E[((c * 2 + w) * QM + s) * EF + field]
EF = 8
F_ID = 0      # request index
F_ROW = 1
F_ACC = 2     # arrival cycle
F_B = 3       # bank
F_NEXT = 4    # next slot in the bank list (or the free list), -1 none
F_PREV = 5
F_ADDR = 6    # byte address (write-buffer lookups)
F_FIRST = 7   # 1 once the request issued its first command


@njit(cache=True, inline="always")
def _mx(a, b):
    return a if a > b else b


@njit(cache=True, inline="always")
def _u(i):
    """An array index as uint64: Numba then skips the negative-index wrap-around (fewer
    instructions and live registers; the bank scans compile to contiguous vector loads)."""
    return np.uint64(i)


@njit(cache=True, inline="always")
def _next_mode(wmode, n_read, n_write, w_enter, w_leave):
    """Ramulator ``set_write_mode``: the mode after one update with these buffer sizes."""
    if not wmode:
        return n_write >= w_enter or n_read == 0
    return not (n_write <= w_leave and n_read != 0)


# scalars of a paused run (:func:`run_kernel`'s ``st``): whether the state is set up, the next
# request to offer, the frontend's next iteration and whether it waits, completed requests, the
# last acceptance, the next refresh, the progress watchdog's three counters
(ST_READY, ST_I, ST_FRONT_K, ST_FRONT_WAIT, ST_DONE, ST_STOP, ST_NEXT_REF, ST_SEEN_DONE,
 ST_SEEN_I, ST_STALLED) = range(10)
ST_N = 10


@njit(cache=True)
def kernel_state(p):
    """Empty state arrays ``(S, E, nz_mask, st)`` for :func:`run_kernel` on parameters ``p``
    (``nz_mask``: per channel and buffer, the banks whose request list is not empty)."""
    C = p[P_CHANNELS]
    QM = max(p[P_RQ], p[P_WQ])
    return (np.zeros(C * CS, np.int64), np.zeros(C * 2 * QM * EF, np.int64),
            np.zeros(C * 2, np.uint64), np.zeros(ST_N, np.int64))


@njit(cache=True)
def shift_request_indices(S, E, st, channels, w0):
    """After the first ``w0`` requests of a paused run are dropped from its arrays, renumber
    the request indices its state holds (:func:`kernel_state`): every queue entry's (free
    entries' are never read), every bank's active request (read only where one is), and the
    run's counters."""
    for k in range(F_ID, E.shape[0], EF):
        E[k] -= w0
    for c in range(channels):
        for b in range(NBM):
            S[c * CS + X_AID + b] -= w0
    st[ST_I] -= w0
    st[ST_DONE] -= w0
    st[ST_SEEN_DONE] -= w0
    st[ST_SEEN_I] -= w0


@njit(cache=True)
def simulate_kernel(p, offer, chn, bgi, bki, row, addr, isw,
                    acc, first, cls, fin, comp, refresh_at_stop, refresh_total):
    """Replay ``n`` requests at once: :func:`run_kernel` from a new state to the end."""
    S, E, nz_mask, st = kernel_state(p)
    return run_kernel(p, offer, chn, bgi, bki, row, addr, isw, acc, first, cls, fin, comp,
                      refresh_at_stop, refresh_total, offer.shape[0], S, E, nz_mask, st, INF)


@njit(cache=True)
def run_kernel(p, offer, chn, bgi, bki, row, addr, isw, acc, first, cls, fin, comp,
               refresh_at_stop, refresh_total, n, S, E, nz_mask, st, until, front_all=False):
    """Replay requests ``0 .. n-1`` up to the controller iteration ``until`` (INF: to the end),
    from the state ``S``, ``E``, ``nz_mask``, ``st`` (:func:`kernel_state`; set up on the first
    call) and leave it there: a later call with more requests (their offers not before
    ``until``) and a later ``until`` continues the same run, so a run in pieces gives what one
    call gives (per request, bit for bit). Arrays of shape (>= n,); the rest as follows.

    Inputs (shape (n,); in :func:`simulate_kernel` the arrays' own length): ``offer`` earliest
    cycle the frontend may offer request i (int64),
    ``chn``, ``bgi``, ``bki`` (flat bank = bank group x banks per group + bank in group), ``row``
    coordinates (int64), ``addr`` byte address (int64 bits), ``isw`` is-write (bool). ``bgi`` is
    not read (the bank group is derived from ``bki``); it stays for the mapping's signature. The
    frontend offers requests in order, at most one per cycle, retrying a request while its buffer
    is full; with ``p[P_CHAIN]`` set it offers request i+1 only when request i completed.

    Outputs (shape (n,), int64 cycles, -1 = never): ``acc`` accepted (controller arrive), ``first``
    first command, ``cls`` row-buffer class (0 hit, 1 miss, 2 conflict, -1 forwarded/coalesced),
    ``fin`` RD/WR issue, ``comp`` completion (data returned / write issued). ``comp`` must start
    at -1 (the chain frontend reads it); every entry of the other four is written when the run
    completes (status 0), so they need no initial value. ``refresh_at_stop`` and
    ``refresh_total`` (shape (C,)) count REFab at the last acceptance and at the end.

    Returns (stop_cycle, status): the iteration at which the last request was accepted, and 0, 1
    if the model deadlocked, 2 if there are more than ``MAX_BANKS`` banks, or 3 if it stopped
    making progress: ``STALL_REFRESHES`` refresh intervals passed while requests were waiting and
    none was accepted or completed (a controller that never leaves write mode, say - only
    refreshes would keep the clock moving, forever).

    A full evaluation of a channel computes the ready cycle of every candidate; if none is ready it
    also determines the winner at the earliest ready cycle ``T'`` and caches it, so the next tick of
    that channel issues without another scan. An arrival updates the cache incrementally (the new,
    youngest request wins only if it is ready strictly earlier, or - row-hit-first - at the same
    cycle as a hit against a non-hit) unless it changes the write mode.

    With ``front_all`` the run goes on past ``until`` until the frontend has accepted every one
    of ``0 .. n-1`` (and pauses before the next event): a later request queues behind them in
    the frontend, so it could not have been offered earlier either.

    Paused (``until`` reached with requests still in flight, or all of ``0 .. n-1`` done), it
    returns status 0 as well; the chain frontend (``p[P_CHAIN]``) is only run in one call.
    """
    C = p[P_CHANNELS]
    NB = p[P_BANKS]
    NG = p[P_BANK_GROUPS]
    if NB > NBM:
        return -1, 2
    QM = max(p[P_RQ], p[P_WQ])
    rl = p[P_NCL] + p[P_NBL]
    chain = p[P_CHAIN] != 0
    refresh_on = p[P_REFRESH] != 0
    rhf = p[P_ROW_HIT_FIRST] != 0
    # row-hit-first: non-hits sort after hits
    ohi = np.int64(1) << NONHIT_BIT if rhf else np.int64(0)
    nrefi = p[P_NREFI]
    w_enter = p[P_W_ENTER]
    w_leave = p[P_W_LEAVE]
    cap_r = p[P_RQ]
    cap_w = p[P_WQ]
    n_bl = p[P_NBL]
    sh = 1
    while (1 << (sh - 1)) < NB:
        sh += 1
    bmask = (1 << (sh - 1)) - 1
    bpg = NB // NG
    gsh = 0  # bank group = flat bank >> gsh (banks per group is a power of two)
    while (1 << gsh) < bpg:
        gsh += 1
    neg = -(1 << 40)
    # timing constraints: (calibration doc section 5) for a command issued at t
    rd_wr = p[P_NCL] + n_bl + 2 - p[P_NCWL] + 2
    wr2pre = p[P_NCWL] + n_bl + p[P_NWR] + 1
    wr_rd_s = p[P_NCWL] + n_bl + p[P_NWTRS]
    wr_rd_l = p[P_NCWL] + n_bl + p[P_NWTRL]

    # nz_mask: banks whose list is not empty, per buffer
    for c in range(C if st[ST_READY] == 0 else 0):
        cb = c * CS
        for k in range(4):
            S[cb + X_FAW + k] = neg
        S[cb + X_LASTDEP] = neg
        S[cb + X_NEXT] = INF
        S[cb + X_CSRC] = -1
        for b in range(NBM):
            S[cb + X_OPEN + b] = -1
            S[cb + X_AKEY + b] = INF
        for j in range(2 * NBM):
            S[cb + X_LHEAD + j] = -1
            S[cb + X_LTAIL + j] = -1
            S[cb + X_LH + j] = -1
            S[cb + X_LO + j] = -1
            S[cb + X_HKEY + j] = INF
            S[cb + X_OKEY + j] = INF
        for w in range(2):
            eb = (c * 2 + w) * QM * EF
            for s in range(QM):
                E[eb + s * EF + F_NEXT] = s + 1 if s + 1 < QM else -1

    if st[ST_READY] == 0:                      # a new run: nothing offered, nothing done
        st[ST_FRONT_K] = INF
        st[ST_STOP] = -1
        st[ST_NEXT_REF] = nrefi if refresh_on else INF
        st[ST_SEEN_DONE] = -1
        st[ST_SEEN_I] = -1
        st[ST_READY] = 1
    i = st[ST_I]                   # next request to offer
    front_k = st[ST_FRONT_K]       # iteration at which the frontend next tries
    front_wait = st[ST_FRONT_WAIT] != 0   # blocked: full buffer (retry after an issue) or chain
    done = st[ST_DONE]
    stop_cycle = st[ST_STOP]       # iteration of the last acceptance
    next_ref = st[ST_NEXT_REF]
    seen_done = st[ST_SEEN_DONE]   # progress watchdog: counts at the last refresh, and the
    seen_i = st[ST_SEEN_I]         # refreshes since either changed while requests waited
    stalled = st[ST_STALLED]
    if front_k == INF and i < n:   # every earlier request offered (or none yet): the next one
        front_k = _mx(stop_cycle + 1, offer[_u(i)])

    while done < n or i < n:
        t = INF
        if i < n and not front_wait:
            t = front_k + 1
        for c in range(C):
            ne = S[_u(c * CS + X_NEXT)]
            if ne < t:
                t = ne
        if next_ref < t and (done < n or i < n):
            t = next_ref
        if t >= until and t != INF and (i >= n or not front_all):
            break
        if t == INF:
            return stop_cycle, 1

        # ---- frontend at iteration t - 1 (controller clock before tick t) ----
        if i < n and not front_wait and front_k == t - 1:
            k = t - 1
            ui = _u(i)
            c = chn[ui]
            a = addr[ui]
            w = 1 if isw[ui] else 0
            b = bki[ui]
            cb = c * CS
            match = False
            wb = (c * 2 + 1) * QM * EF
            s = S[_u(cb + X_LHEAD + NBM + b)]   # a same-address write is in the same bank
            while s >= 0:
                if E[_u(wb + s * EF + F_ADDR)] == a:
                    match = True
                    break
                s = E[_u(wb + s * EF + F_NEXT)]
            accepted = False
            if match:  # read forwarded from / write coalesced into the write buffer
                accepted = True
                first[ui] = -1
                cls[ui] = -1
                fin[ui] = -1
                if w:
                    comp[ui] = k
                else:
                    ld = _mx(k + 1, S[_u(cb + X_LASTDEP)] + 1)
                    comp[ui] = ld
                    S[_u(cb + X_LASTDEP)] = ld
                done += 1
            elif S[_u(cb + X_QN + w)] < (cap_w if w else cap_r):
                eb = (c * 2 + w) * QM * EF
                lx = cb + w * NBM + b
                s = S[_u(cb + X_FREE + w)]
                es = eb + s * EF
                S[_u(cb + X_FREE + w)] = E[_u(es + F_NEXT)]
                ri = row[ui]
                E[_u(es + F_ID)] = i
                E[_u(es + F_ROW)] = ri
                E[_u(es + F_ACC)] = k
                E[_u(es + F_B)] = b
                E[_u(es + F_NEXT)] = -1
                E[_u(es + F_ADDR)] = a
                E[_u(es + F_FIRST)] = 0
                tl = S[_u(lx + X_LTAIL)]
                E[_u(es + F_PREV)] = tl
                if tl >= 0:
                    E[_u(eb + tl * EF + F_NEXT)] = s
                else:
                    S[_u(lx + X_LHEAD)] = s
                S[_u(lx + X_LTAIL)] = s
                if S[_u(lx + X_LN)] == 0:
                    nz_mask[_u(c * 2 + w)] |= np.uint64(1) << np.uint64(b)
                S[_u(lx + X_LN)] += 1
                orow = S[_u(cb + X_OPEN + b)]
                new_h = False
                new_o = False
                if orow == ri:
                    S[_u(lx + X_LNH)] += 1
                    S[_u(cb + X_NHIT + w)] += 1
                    if S[_u(lx + X_LH)] < 0:
                        S[_u(lx + X_LH)] = s
                        S[_u(lx + X_HKEY)] = (k << sh) | (b << 1)
                        new_h = True
                elif S[_u(lx + X_LO)] < 0:
                    S[_u(lx + X_LO)] = s
                    S[_u(lx + X_OKEY)] = (k << sh) | (b << 1) | 1
                    new_o = True
                S[_u(cb + X_QN + w)] += 1
                accepted = True
                # keep or refine the cached decision of channel c
                csrc = S[_u(cb + X_CSRC)]
                wm = S[_u(cb + X_WMODE)] != 0
                if csrc < 0 or S[_u(cb + X_PRIO)] > 0:
                    if S[_u(cb + X_NEXT)] > t:
                        S[_u(cb + X_NEXT)] = t
                        S[_u(cb + X_CSRC)] = -1
                elif _next_mode(wm, S[_u(cb + X_QN)], S[_u(cb + X_QN + 1)], w_enter,
                                w_leave) != wm:
                    S[_u(cb + X_NEXT)] = t
                    S[_u(cb + X_CSRC)] = -1
                elif (w == 1) == wm and (new_h or new_o):
                    g = b >> gsh
                    q = -1
                    if orow < 0:
                        q = ACT
                    elif new_h:
                        q = WR if w else RD
                    elif S[_u(cb + X_BACT + b)] == 0 and not (rhf and S[_u(lx + X_LH)] >= 0):
                        q = PRE
                    if q >= 0:
                        r = _mx(_mx(_mx(S[_u(cb + X_CR + q)], S[_u(cb + X_BG + g * 8 + q)]),
                                    S[_u(cb + X_BANK + b * 8 + q)]), t)
                        ne = S[_u(cb + X_NEXT)]
                        if r < ne or (rhf and r == ne and new_h and csrc == 2 + w
                                      and S[_u(cb + X_CCMD)] != q):
                            S[_u(cb + X_NEXT)] = r
                            S[_u(cb + X_CSRC)] = 2 + w
                            S[_u(cb + X_CJ)] = s
                            S[_u(cb + X_CCMD)] = q
            if accepted:
                acc[ui] = k
                i += 1
                if i == n:
                    stop_cycle = k
                    front_k = INF
                    for cc in range(C):
                        refresh_at_stop[cc] = refresh_total[cc]
                elif chain:
                    if comp[_u(i - 1)] >= 0:
                        front_k = _mx(_mx(comp[_u(i - 1)], k + 1), offer[_u(i)])
                    else:
                        front_wait = True
                else:
                    ui = _u(i)
                    front_k = _mx(k + 1, offer[ui])
                    # the next request's buffer is full: wait for an entry to leave instead of
                    # retrying every cycle (same outcome: only an issue from that buffer frees an
                    # entry, and it releases the frontend at its tick; the write buffer can only
                    # shrink meanwhile, so a request not forwarded now will not be later)
                    c2 = chn[ui]
                    w2 = 1 if isw[ui] else 0
                    if S[_u(c2 * CS + X_QN + w2)] >= (cap_w if w2 else cap_r):
                        wb = (c2 * 2 + 1) * QM * EF
                        a2 = addr[ui]
                        s = S[_u(c2 * CS + X_LHEAD + NBM + bki[ui])]
                        while s >= 0 and E[_u(wb + s * EF + F_ADDR)] != a2:
                            s = E[_u(wb + s * EF + F_NEXT)]
                        if s < 0:
                            front_wait = True
            else:
                front_wait = True
            if done == n and i == n:
                break

        # ---- tick t ----
        if t == next_ref:
            next_ref += nrefi
            if done == seen_done and i == seen_i and done < i:
                stalled += 1
                if stalled > STALL_REFRESHES:
                    return stop_cycle, 3
            else:
                stalled = 0
                seen_done = done
                seen_i = i
            for c in range(C):
                cb = c * CS
                S[_u(cb + X_PRIO)] += 1
                S[_u(cb + X_NEXT)] = t
                S[_u(cb + X_CSRC)] = -1
        # channels due at t (a data-dependent walk rather than a counted loop)
        cn = 0
        while True:
            while cn < C and S[_u(cn * CS + X_NEXT)] != t:
                cn += 1
            if cn >= C:
                break
            c = cn
            cn += 1
            cb = c * CS
            # t again, loaded: otherwise LLVM computes (and spills) every t + constant of the
            # issue code before the walk, on every tick
            t = S[_u(cb + X_NEXT)]
            src = -1
            bj = -1
            cmd = -1
            if S[_u(cb + X_CSRC)] >= 0:
                src = S[_u(cb + X_CSRC)]
                bj = S[_u(cb + X_CJ)]
                cmd = S[_u(cb + X_CCMD)]
                S[_u(cb + X_CSRC)] = -1
            else:
                # (a) active buffer: the oldest request ready now (ja), else the earliest ready
                # cycle a_min and the oldest request ready then (ja_min); per bank
                ja = -1
                a_min = INF
                ja_min = -1
                an = S[_u(cb + X_AN)]
                if an > 0:
                    # one pass: min of (cycles until ready, saturated) << DSH | key
                    cr_rd = S[_u(cb + X_CR + RD)]
                    cr_wr = S[_u(cb + X_CR + WR)]
                    # max(ready, t) - t is (ready - t) clamped at 0; the max with t is hoisted
                    t_rd = _mx(cr_rd, t)
                    t_wr = _mx(cr_wr, t)
                    kbest = INF
                    for j in range(an):
                        bb = S[_u(cb + X_ABANK + j)]
                        ra = _mx(t_wr if S[_u(cb + X_AWR + bb)] else t_rd,
                                 S[_u(cb + X_BKFN + S[_u(cb + X_AOFF + bb)] + bb)])
                        d = min(ra - t, DSAT)
                        kbest = min(kbest, (d << DSH) | S[_u(cb + X_AKEY + bb)])
                    d = kbest >> DSH
                    if d == 0:
                        ja = (kbest >> 1) & bmask
                    elif d < DSAT:
                        a_min = t + d
                        ja_min = (kbest >> 1) & bmask
                    else:  # every candidate is DSAT or more cycles away: exact two passes
                        for j in range(an):
                            bb = S[_u(cb + X_ABANK + j)]
                            ra = (_mx(cr_wr, S[_u(cb + X_BKFN + NBM + bb)])
                                  if S[_u(cb + X_AWR + bb)] else
                                  _mx(cr_rd, S[_u(cb + X_BKFN + bb)]))
                            S[_u(cb + X_RH + bb)] = ra
                            a_min = min(a_min, ra)
                        kbest = INF
                        for j in range(an):
                            bb = S[_u(cb + X_ABANK + j)]
                            kbest = min(kbest, S[_u(cb + X_AKEY + bb)]
                                        if S[_u(cb + X_RH + bb)] <= a_min else INF)
                        ja_min = (kbest >> 1) & bmask
                if ja >= 0:
                    src = 0
                    bj = ja
                    cmd = WR if S[_u(cb + X_AWR + ja)] else RD
                elif S[_u(cb + X_PRIO)] > 0:
                    # (b) refresh: PREab while a bank is open, then REFab
                    q = PREA if S[_u(cb + X_OPENCNT)] > 0 else REF
                    r = S[_u(cb + X_CR + q)]
                    blocked = q == PREA and an > 0  # PREab would close an active bank
                    if r <= t and not blocked:
                        src = 1
                        cmd = q
                    else:
                        S[_u(cb + X_NEXT)] = a_min if blocked else min(a_min, r)
                        continue
                else:
                    # (c) write-mode update, then the scheduler over one buffer: per bank, the
                    # oldest hit (ready at max(cr[RD/WR], bank-local)) and the oldest non-hit
                    # (the bank's ACT or PRE)
                    wm = _next_mode(S[_u(cb + X_WMODE)] != 0, S[_u(cb + X_QN)],
                                    S[_u(cb + X_QN + 1)], w_enter, w_leave)
                    S[_u(cb + X_WMODE)] = 1 if wm else 0
                    w = 1 if wm else 0
                    final = WR if w else RD
                    lb = cb + w * NBM
                    fb = cb + X_BKFN + w * NBM
                    cr_act = S[_u(cb + X_CR + ACT)]
                    cr_pre = S[_u(cb + X_CR + PRE)]
                    cr_fin = S[_u(cb + X_CR + final)]
                    q_min = INF
                    jq = -1
                    jq_min = -1
                    q = -1
                    if S[_u(cb + X_QN + w)] > 0:
                        # one branch-free (vectorized) pass over the banks from the lowest to the
                        # highest one holding requests (empty banks have INF keys): min of
                        # (cycles until ready, saturated at DSAT) << DSH | non-hit flag
                        # (row-hit-first) | key, for each bank's oldest hit and oldest non-hit
                        kbest = INF
                        m = nz_mask[_u(c * 2 + w)]
                        b_lo = np.int64(trailing_zeros(m))
                        b_hi = 64 - np.int64(leading_zeros(m))
                        # max(ready, t) - t is (ready - t) clamped at 0; the max with t is hoisted
                        t_fin = _mx(cr_fin, t)
                        t_act = _mx(cr_act, t)
                        t_pre = _mx(cr_pre, t)
                        # a PRE blocked by the active buffer has ro = INF, so do = DSAT: it only
                        # matters when everything is DSAT away (exact passes below)
                        if rhf:
                            for bb in range(b_lo, b_hi):
                                hk = S[_u(lb + X_HKEY + bb)]
                                ok = S[_u(lb + X_OKEY + bb)]
                                rh = _mx(t_fin, S[_u(fb + bb)])
                                is_act = S[_u(cb + X_BKOQ + bb)] == ACT
                                ro = _mx(t_act if is_act else t_pre, S[_u(cb + X_BKOTH + bb)])
                                dh = min(rh - t, DSAT)
                                do = min(ro - t, DSAT)
                                # no PRE while an older hit to the open row waits
                                po = (do << DSH) | (ok + ohi)
                                po = INF if (not is_act and hk < ok) else po
                                kbest = min(kbest, min((dh << DSH) | hk, po))
                        else:
                            # a buffer without hits (random traffic) or with only hits (streams)
                            # needs half the pass (a missing candidate has an INF key)
                            n_hit = S[_u(cb + X_NHIT + w)]
                            if n_hit == 0:
                                for bb in range(b_lo, b_hi):
                                    ok = S[_u(lb + X_OKEY + bb)]
                                    is_act = S[_u(cb + X_BKOQ + bb)] == ACT
                                    ro = _mx(t_act if is_act else t_pre,
                                             S[_u(cb + X_BKOTH + bb)])
                                    do = min(ro - t, DSAT)
                                    kbest = min(kbest, (do << DSH) | ok)
                            elif n_hit == S[_u(cb + X_QN + w)]:
                                for bb in range(b_lo, b_hi):
                                    hk = S[_u(lb + X_HKEY + bb)]
                                    rh = _mx(t_fin, S[_u(fb + bb)])
                                    dh = min(rh - t, DSAT)
                                    kbest = min(kbest, (dh << DSH) | hk)
                            else:
                                for bb in range(b_lo, b_hi):
                                    hk = S[_u(lb + X_HKEY + bb)]
                                    ok = S[_u(lb + X_OKEY + bb)]
                                    rh = _mx(t_fin, S[_u(fb + bb)])
                                    is_act = S[_u(cb + X_BKOQ + bb)] == ACT
                                    ro = _mx(t_act if is_act else t_pre,
                                             S[_u(cb + X_BKOTH + bb)])
                                    dh = min(rh - t, DSAT)
                                    do = min(ro - t, DSAT)
                                    kbest = min(kbest, min((dh << DSH) | hk, (do << DSH) | ok))
                        if kbest < INF:
                            d = kbest >> DSH
                            if d == DSAT:  # all DSAT or more cycles away: exact two passes
                                m = nz_mask[_u(c * 2 + w)]
                                while m:
                                    bb = np.int64(trailing_zeros(m))
                                    m &= m - np.uint64(1)
                                    hk = S[_u(lb + X_HKEY + bb)]
                                    ok = S[_u(lb + X_OKEY + bb)]
                                    rh = _mx(cr_fin, S[_u(fb + bb)])
                                    rh = rh if hk < INF else INF
                                    is_act = S[_u(cb + X_BKOQ + bb)] == ACT
                                    ro = _mx(cr_act if is_act else cr_pre,
                                             S[_u(cb + X_BKOTH + bb)])
                                    ro = ro if ok < INF and (is_act or not rhf or ok < hk) else INF
                                    S[_u(cb + X_RH + bb)] = rh
                                    S[_u(cb + X_RO + bb)] = ro
                                    q_min = min(q_min, min(rh, ro))
                                kbest = INF
                                if q_min < INF:
                                    m = nz_mask[_u(c * 2 + w)]
                                    while m:
                                        bb = np.int64(trailing_zeros(m))
                                        m &= m - np.uint64(1)
                                        kh = (S[_u(lb + X_HKEY + bb)]
                                              if S[_u(cb + X_RH + bb)] <= q_min else INF)
                                        ko = (S[_u(lb + X_OKEY + bb)] + ohi
                                              if S[_u(cb + X_RO + bb)] <= q_min else INF)
                                        kbest = min(kbest, min(kh, ko))
                            else:
                                q_min = t + d
                            if kbest < INF:
                                bb = (kbest >> 1) & bmask
                                if kbest & 1:
                                    slot = S[_u(lb + X_LO + bb)]
                                    q = S[_u(cb + X_BKOQ + bb)]
                                else:
                                    slot = S[_u(lb + X_LH + bb)]
                                    q = final
                                if q_min <= t:
                                    jq = slot
                                    cmd = q
                                    q_min = INF
                                else:
                                    jq_min = slot
                    if jq >= 0:
                        src = 2 + w
                        bj = jq
                    else:
                        # nothing ready: cache the winner at the earliest ready cycle (the active
                        # buffer first on a tie, as step (a) precedes step (c))
                        if a_min == INF and q_min == INF:
                            S[_u(cb + X_NEXT)] = INF
                        elif a_min <= q_min:
                            S[_u(cb + X_NEXT)] = a_min
                            S[_u(cb + X_CSRC)] = 0
                            S[_u(cb + X_CJ)] = ja_min
                            S[_u(cb + X_CCMD)] = WR if S[_u(cb + X_AWR + ja_min)] else RD
                        else:
                            S[_u(cb + X_NEXT)] = q_min
                            S[_u(cb + X_CSRC)] = 2 + w
                            S[_u(cb + X_CJ)] = jq_min
                            S[_u(cb + X_CCMD)] = q
                        continue

            # ---- issue cmd at t ----
            # (the request's own fields come from its entry: the per-request arrays are only
            # written here, their lines are cold)
            w = 0
            es = 0
            if src == 0:
                b = bj
                best = S[_u(cb + X_AID + b)]
                g = b >> gsh
            elif src >= 2:
                w = src - 2
                es = ((c * 2 + w) * QM + bj) * EF
                best = E[_u(es + F_ID)]
                b = E[_u(es + F_B)]
                g = b >> gsh
            else:
                best = -1
                g = 0
                b = 0
            # constraint table (calibration doc section 5) for cmd issued at t; channel- and
            # rank-level constraints share one ready cycle per command (only their max is used)
            cx = cb + X_CR
            gx = cb + X_BG + g * 8
            bx = cb + X_BANK + b * 8
            if cmd == ACT or cmd == RD or cmd == WR:  # 2-cycle commands occupy the CA bus
                for k in range(NCMD):
                    S[_u(cx + k)] = _mx(S[_u(cx + k)], t + 2)
            if cmd == RD:
                S[_u(cx + RD)] = _mx(S[_u(cx + RD)], t + _mx(n_bl, p[P_NCCDS]))
                S[_u(cx + WR)] = _mx(S[_u(cx + WR)], t + rd_wr)
                S[_u(cx + PREA)] = _mx(S[_u(cx + PREA)], t + p[P_NRTP] + 1)
                S[_u(gx + RD)] = _mx(S[_u(gx + RD)], t + p[P_NCCDL])
                S[_u(bx + PRE)] = _mx(S[_u(bx + PRE)], t + p[P_NRTP] + 1)
            elif cmd == WR:
                S[_u(cx + WR)] = _mx(S[_u(cx + WR)], t + _mx(n_bl, p[P_NCCDS_WR]))
                S[_u(cx + RD)] = _mx(S[_u(cx + RD)], t + wr_rd_s)
                S[_u(cx + PREA)] = _mx(S[_u(cx + PREA)], t + wr2pre)
                S[_u(gx + WR)] = _mx(S[_u(gx + WR)], t + p[P_NCCDL_WR])
                S[_u(gx + RD)] = _mx(S[_u(gx + RD)], t + wr_rd_l)
                S[_u(bx + PRE)] = _mx(S[_u(bx + PRE)], t + wr2pre)
            elif cmd == ACT:
                ra = _mx(S[_u(cx + ACT)], t + p[P_NRRDS])
                fp = S[_u(cb + X_FAWPOS)]
                S[_u(cb + X_FAW + fp)] = t
                fp = (fp + 1) & 3
                S[_u(cb + X_FAWPOS)] = fp
                S[_u(cb + X_FAWCNT)] += 1
                if S[_u(cb + X_FAWCNT)] >= 4:  # the 5th ACT waits nFAW after the 4th last one
                    ra = _mx(ra, S[_u(cb + X_FAW + fp)] + p[P_NFAW])
                S[_u(cx + ACT)] = ra
                S[_u(cx + PREA)] = _mx(S[_u(cx + PREA)], t + p[P_NRAS] + 1)
                S[_u(cx + REF)] = _mx(S[_u(cx + REF)], t + p[P_NRC] + 1)
                S[_u(gx + ACT)] = _mx(S[_u(gx + ACT)], t + p[P_NRRDL])
                S[_u(bx + ACT)] = _mx(S[_u(bx + ACT)], t + p[P_NRC])
                S[_u(bx + RD)] = _mx(S[_u(bx + RD)], t + p[P_NRCD])
                S[_u(bx + WR)] = _mx(S[_u(bx + WR)], t + p[P_NRCD])
                S[_u(bx + PRE)] = _mx(S[_u(bx + PRE)], t + p[P_NRAS] + 1)
            elif cmd == PRE:
                S[_u(cx + PRE)] = _mx(S[_u(cx + PRE)], t + p[P_NPPD])
                S[_u(cx + PREA)] = _mx(S[_u(cx + PREA)], t + p[P_NPPD])
                S[_u(cx + REF)] = _mx(S[_u(cx + REF)], t + p[P_NRP])
                S[_u(bx + ACT)] = _mx(S[_u(bx + ACT)], t + p[P_NRP] - 1)
            elif cmd == PREA:
                S[_u(cx + ACT)] = _mx(S[_u(cx + ACT)], t + p[P_NRP] - 1)
                S[_u(cx + PRE)] = _mx(S[_u(cx + PRE)], t + p[P_NPPD])
                S[_u(cx + PREA)] = _mx(S[_u(cx + PREA)], t + p[P_NPPD])
                S[_u(cx + REF)] = _mx(S[_u(cx + REF)], t + p[P_NRP])
            else:  # REF
                S[_u(cx + ACT)] = _mx(S[_u(cx + ACT)], t + p[P_NRFC] - 1)
                S[_u(cx + PREA)] = _mx(S[_u(cx + PREA)], t + p[P_NRFC])
            # banks [cl_lo, cl_hi) whose lists are re-classified for open row cl_row below
            cl_lo = 0
            cl_hi = 0
            cl_row = -1
            if src == 1:
                if cmd == PREA:
                    for bb in range(NB):
                        S[_u(cb + X_OPEN + bb)] = -1
                    S[_u(cb + X_OPENCNT)] = 0
                    cl_hi = NB
                else:
                    S[_u(cb + X_PRIO)] -= 1
                    refresh_total[c] += 1
            else:
                ub = _u(best)
                # first command: a request from the active buffer issued its ACT already
                if src >= 2 and E[_u(es + F_FIRST)] == 0:
                    E[_u(es + F_FIRST)] = 1
                    first[ub] = t
                    cls[ub] = 1 if cmd == ACT else (2 if cmd == PRE else 0)
                if src >= 2 and cmd != PRE:
                    # remove the entry from its bank list (ACT moves it to the active buffer,
                    # RD/WR retires it) and return its slot to the pool
                    eb = (c * 2 + w) * QM * EF
                    lx = cb + w * NBM + b
                    s = bj
                    prv = E[_u(eb + s * EF + F_PREV)]
                    nxt = E[_u(eb + s * EF + F_NEXT)]
                    if prv >= 0:
                        E[_u(eb + prv * EF + F_NEXT)] = nxt
                    else:
                        S[_u(lx + X_LHEAD)] = nxt
                    if nxt >= 0:
                        E[_u(eb + nxt * EF + F_PREV)] = prv
                    else:
                        S[_u(lx + X_LTAIL)] = prv
                    S[_u(lx + X_LN)] -= 1
                    if S[_u(lx + X_LN)] == 0:
                        nz_mask[_u(c * 2 + w)] &= ~(np.uint64(1) << np.uint64(b))
                    E[_u(eb + s * EF + F_NEXT)] = S[_u(cb + X_FREE + w)]
                    S[_u(cb + X_FREE + w)] = s
                    S[_u(cb + X_QN + w)] -= 1
                    if cmd != ACT:
                        # the retired entry was the oldest hit: the next one is younger
                        S[_u(lx + X_LNH)] -= 1
                        S[_u(cb + X_NHIT + w)] -= 1
                        orow = S[_u(cb + X_OPEN + b)]
                        h = -1
                        if S[_u(lx + X_LNH)] > 0:
                            s = nxt
                            while E[_u(eb + s * EF + F_ROW)] != orow:
                                s = E[_u(eb + s * EF + F_NEXT)]
                            h = s
                        S[_u(lx + X_LH)] = h
                        S[_u(lx + X_HKEY)] = ((E[_u(eb + h * EF + F_ACC)] << sh) | (b << 1)
                                              if h >= 0 else INF)
                if cmd == ACT:
                    rb = E[_u(es + F_ROW)]
                    S[_u(cb + X_OPEN + b)] = rb
                    S[_u(cb + X_OPENCNT)] += 1
                    S[_u(cb + X_BACT + b)] = 1
                    S[_u(cb + X_AKEY + b)] = (E[_u(es + F_ACC)] << sh) | (b << 1)
                    S[_u(cb + X_AID + b)] = best
                    S[_u(cb + X_AWR + b)] = w
                    S[_u(cb + X_AOFF + b)] = NBM if w else 0
                    an = S[_u(cb + X_AN)]
                    S[_u(cb + X_ABANK + an)] = b
                    S[_u(cb + X_APOS + b)] = an
                    S[_u(cb + X_AN)] = an + 1
                    cl_lo = b
                    cl_hi = b + 1
                    cl_row = rb
                elif cmd == PRE:
                    S[_u(cb + X_OPEN + b)] = -1
                    S[_u(cb + X_OPENCNT)] -= 1
                    cl_lo = b
                    cl_hi = b + 1
                else:  # RD / WR: the request retires
                    fin[ub] = t
                    if cmd == RD:
                        comp[ub] = t + rl
                        S[_u(cb + X_LASTDEP)] = t + rl
                    else:
                        comp[ub] = t
                    done += 1
                    if chain and front_wait and i < n and best == i - 1:
                        front_wait = False
                        front_k = _mx(_mx(comp[ub], acc[ub] + 1), offer[_u(i)])
                    if src == 0:
                        S[_u(cb + X_BACT + b)] = 0
                        S[_u(cb + X_AKEY + b)] = INF
                        an = S[_u(cb + X_AN)] - 1
                        S[_u(cb + X_AN)] = an
                        j = S[_u(cb + X_APOS + b)]
                        last = S[_u(cb + X_ABANK + an)]
                        S[_u(cb + X_ABANK + j)] = last
                        S[_u(cb + X_APOS + last)] = j
            # re-classify the bank lists of both buffers for the new open row: hit count, oldest
            # hit, oldest non-hit and their keys (written out here: a helper function taking
            # arrays costs an atomic reference-count update per array and call)
            for bb in range(cl_lo, cl_hi):
                b2 = bb << 1
                for ww in range(2):
                    lx = cb + ww * NBM + bb
                    eb = (c * 2 + ww) * QM * EF
                    h = -1
                    o = -1
                    nh = 0
                    s = S[_u(lx + X_LHEAD)]
                    if cl_row < 0:
                        o = s
                    else:
                        while s >= 0:
                            if E[_u(eb + s * EF + F_ROW)] == cl_row:
                                nh += 1
                                if h < 0:
                                    h = s
                            elif o < 0:
                                o = s
                            s = E[_u(eb + s * EF + F_NEXT)]
                    S[_u(cb + X_NHIT + ww)] += nh - S[_u(lx + X_LNH)]
                    S[_u(lx + X_LNH)] = nh
                    S[_u(lx + X_LH)] = h
                    S[_u(lx + X_LO)] = o
                    S[_u(lx + X_HKEY)] = (E[_u(eb + h * EF + F_ACC)] << sh) | b2 if h >= 0 else INF
                    S[_u(lx + X_OKEY)] = ((E[_u(eb + o * EF + F_ACC)] << sh) | b2 | 1 if o >= 0
                                          else INF)
            # refresh the per-bank tables where their inputs changed: PREab all banks; RD / WR the
            # row-hit tables of the bank group (its RD / WR ready cycles moved); ACT the closed
            # banks of the group (its ACT ready cycle moved); every command but REF its own bank
            if cmd == PREA:
                g_lo = 0
                g_hi = NG
            elif cmd != REF:
                g_lo = g
                g_hi = g + 1
            else:
                g_lo = 0
                g_hi = 0
            for gg in range(g_lo, g_hi):
                gx = cb + X_BG + gg * 8
                g_rd = S[_u(gx + RD)]
                g_wr = S[_u(gx + WR)]
                g_act = S[_u(gx + ACT)]
                if cmd == PREA or cmd == RD or cmd == WR:
                    for bb in range(gg * bpg, gg * bpg + bpg):
                        bx = cb + X_BANK + bb * 8
                        S[_u(cb + X_BKFN + bb)] = _mx(g_rd, S[_u(bx + RD)])
                        S[_u(cb + X_BKFN + NBM + bb)] = _mx(g_wr, S[_u(bx + WR)])
                if cmd == PREA or cmd == ACT:
                    for bb in range(gg * bpg, gg * bpg + bpg):
                        bx = cb + X_BANK + bb * 8
                        ba = _mx(g_act, S[_u(bx + ACT)])
                        closed = S[_u(cb + X_OPEN + bb)] < 0
                        oth = S[_u(cb + X_BKOTH + bb)]
                        if cmd == PREA:
                            S[_u(cb + X_BKOQ + bb)] = ACT if closed else PRE
                            oth = INF if S[_u(cb + X_BACT + bb)] != 0 else S[_u(bx + PRE)]
                        S[_u(cb + X_BKOTH + bb)] = ba if closed else oth
                if cmd != PREA:
                    bx = cb + X_BANK + b * 8
                    S[_u(cb + X_BKFN + b)] = _mx(g_rd, S[_u(bx + RD)])
                    S[_u(cb + X_BKFN + NBM + b)] = _mx(g_wr, S[_u(bx + WR)])
                    closed = S[_u(cb + X_OPEN + b)] < 0
                    S[_u(cb + X_BKOQ + b)] = ACT if closed else PRE
                    oth = INF if S[_u(cb + X_BACT + b)] != 0 else S[_u(bx + PRE)]
                    S[_u(cb + X_BKOTH + b)] = _mx(g_act, S[_u(bx + ACT)]) if closed else oth
            # a blocked frontend retries once the buffer it waits for lost an entry (ACT moves a
            # request to the active buffer, RD/WR retires it)
            if (front_wait and not chain and i < n and chn[_u(i)] == c and src >= 2
                    and cmd != PRE and (src == 3) == isw[_u(i)]):
                front_wait = False
                front_k = _mx(t, offer[_u(i)])
            S[_u(cb + X_NEXT)] = t + 2 if (cmd == ACT or cmd == RD or cmd == WR) else t + 1
    st[ST_I] = i
    st[ST_FRONT_K] = front_k
    st[ST_FRONT_WAIT] = 1 if front_wait else 0
    st[ST_DONE] = done
    st[ST_STOP] = stop_cycle
    st[ST_NEXT_REF] = next_ref
    st[ST_SEEN_DONE] = seen_done
    st[ST_SEEN_I] = seen_i
    st[ST_STALLED] = stalled
    return stop_cycle, 0


@njit(cache=True)
def simulate_groups_kernel(p, start, offer, chn, bgi, bki, row, addr, isw,
                           acc, first, cls, fin, comp, refresh_at_stop, refresh_total, stop):
    """Run ``G = start.size - 1`` independent controllers: group ``g`` is requests
    ``start[g]:start[g+1]`` (each group in its own offer order, cycles counted from 0 for each),
    with its own frontend, queues, banks and refresh clock. Per-request arrays as in
    :func:`simulate_kernel`; ``refresh_at_stop``, ``refresh_total`` have shape (G, C), ``stop``
    (G,) receives each group's last-acceptance cycle. Returns (the first group that failed, its
    status as in :func:`simulate_kernel`), or (-1, 0)."""
    for g in range(start.size - 1):
        lo = start[g]
        hi = start[g + 1]
        if hi == lo:
            stop[g] = 0
            continue
        st, status = simulate_kernel(p, offer[lo:hi], chn[lo:hi], bgi[lo:hi], bki[lo:hi],
                                     row[lo:hi], addr[lo:hi], isw[lo:hi], acc[lo:hi],
                                     first[lo:hi], cls[lo:hi], fin[lo:hi], comp[lo:hi],
                                     refresh_at_stop[g], refresh_total[g])
        stop[g] = st
        if status != 0:
            return g, status
    return -1, 0
