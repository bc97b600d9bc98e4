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
``MAX_CYCLE`` = 2**46).

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


@njit(cache=True, inline="always")
def _mx(a, b):
    return a if a > b else b


@njit(cache=True, inline="always")
def _u(i):
    """An array index as uint64: Numba then skips the negative-index wrap-around, so the bank
    scans compile to contiguous vector loads."""
    return np.uint64(i)


@njit(cache=True, inline="always")
def _next_mode(wmode, n_read, n_write, w_enter, w_leave):
    """Ramulator ``set_write_mode``: the mode after one update with these buffer sizes."""
    if not wmode:
        return n_write >= w_enter or n_read == 0
    return not (n_write <= w_leave and n_read != 0)


@njit(cache=True, inline="always")
def _classify(L, base, orow, sh, l_head, l_h, l_o, l_nh, hkey, okey, e_row, e_acc, e_next):
    """Re-classify bank list ``L`` (entry slots from ``base``) for open row ``orow`` (-1 closed):
    its hit count, oldest hit and oldest non-hit and their scheduling keys."""
    b2 = (L & ((1 << (sh - 1)) - 1)) << 1
    h = -1
    o = -1
    nh = 0
    s = l_head[L]
    if orow < 0:
        o = s
    else:
        while s >= 0:
            if e_row[base + s] == orow:
                nh += 1
                if h < 0:
                    h = s
            elif o < 0:
                o = s
            s = e_next[base + s]
    l_nh[L] = nh
    l_h[L] = h
    l_o[L] = o
    hkey[L] = (e_acc[base + h] << sh) | b2 if h >= 0 else INF
    okey[L] = (e_acc[base + o] << sh) | b2 | 1 if o >= 0 else INF


@njit(cache=True)
def simulate_kernel(p, offer, chn, bgi, bki, row, addr, isw,
                    acc, first, cls, fin, comp, refresh_at_stop, refresh_total):
    """Replay ``n`` requests; fill the per-request output arrays in place.

    Inputs (shape (n,)): ``offer`` earliest cycle the frontend may offer request i (int64),
    ``chn``, ``bgi``, ``bki`` (flat bank), ``row`` coordinates (int64), ``addr`` byte address (int64
    bits), ``isw`` is-write (bool). The frontend offers requests in order, at most one per cycle,
    retrying a request while its buffer is full; with ``p[P_CHAIN]`` set it offers request i+1 only
    when request i completed.

    Outputs (shape (n,), int64 cycles, -1 = never): ``acc`` accepted (controller arrive), ``first``
    first command, ``cls`` row-buffer class (0 hit, 1 miss, 2 conflict, -1 forwarded/coalesced),
    ``fin`` RD/WR issue, ``comp`` completion (data returned / write issued). ``refresh_at_stop`` and
    ``refresh_total`` (shape (C,)) count REFab at the last acceptance and at the end.

    Returns (stop_cycle, status): the iteration at which the last request was accepted, and 0 or
    1 if the model deadlocked.

    A full evaluation of a channel computes the ready cycle of every candidate; if none is ready it
    also determines the winner at the earliest ready cycle ``T'`` and caches it, so the next tick of
    that channel issues without another scan. An arrival updates the cache incrementally (the new,
    youngest request wins only if it is ready strictly earlier, or - row-hit-first - at the same
    cycle as a hit against a non-hit) unless it changes the write mode.
    """
    n = offer.shape[0]
    C = p[P_CHANNELS]
    NB = p[P_BANKS]
    NG = p[P_BANK_GROUPS]
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
    sh = 1
    while (1 << (sh - 1)) < NB:
        sh += 1
    bmask = (1 << (sh - 1)) - 1

    neg = -(1 << 40)
    chan_rdy = np.zeros((C, NCMD), np.int64)
    rank_rdy = np.zeros((C, NCMD), np.int64)
    bg_flat = np.zeros(C * NG * NCMD, np.int64)
    bg_rdy = bg_flat.reshape((C, NG, NCMD))
    bank_flat = np.zeros(C * NB * NCMD, np.int64)
    bank_rdy = bank_flat.reshape((C, NB, NCMD))
    faw = np.full((C, 4), neg, np.int64)
    faw_pos = np.zeros(C, np.int64)
    faw_cnt = np.zeros(C, np.int64)
    open_flat = np.full(C * NB, -1, np.int64)
    open_row = open_flat.reshape((C, NB))
    open_cnt = np.zeros(C, np.int64)
    act_flat = np.zeros(C * NB, np.int64)
    bank_act = act_flat.reshape((C, NB))
    # read (0) and write (1) buffers of channel c: a pool of QM entry slots from (c*2+w)*QM, and
    # one age-ordered doubly linked list per bank, index L = (c*2+w)*NB + bank
    cap = np.array([p[P_RQ], p[P_WQ]], np.int64)
    e_id = np.zeros(C * 2 * QM, np.int64)
    e_row = np.zeros(C * 2 * QM, np.int64)
    e_acc = np.zeros(C * 2 * QM, np.int64)
    e_b = np.zeros(C * 2 * QM, np.int64)
    e_next = np.zeros(C * 2 * QM, np.int64)
    e_prev = np.zeros(C * 2 * QM, np.int64)
    free_head = np.zeros(C * 2, np.int64)
    for cw in range(C * 2):
        for s in range(QM):
            e_next[cw * QM + s] = s + 1 if s + 1 < QM else -1
    q_n = np.zeros((C, 2), np.int64)
    l_head = np.full(C * 2 * NB, -1, np.int64)
    l_tail = np.full(C * 2 * NB, -1, np.int64)
    l_n = np.zeros(C * 2 * NB, np.int64)
    l_nh = np.zeros(C * 2 * NB, np.int64)     # hits to the open row in the list
    l_h = np.full(C * 2 * NB, -1, np.int64)   # slot of the oldest hit
    l_o = np.full(C * 2 * NB, -1, np.int64)   # slot of the oldest non-hit
    hkey = np.full(C * 2 * NB, INF, np.int64)  # arrival << sh | bank << 1 (INF: none)
    okey = np.full(C * 2 * NB, INF, np.int64)  # arrival << sh | bank << 1 | 1 (INF: none)
    nz_mask = np.zeros(C * 2, np.uint64)       # banks whose list is not empty
    # active buffer (requests whose ACT issued), at most one per bank
    act_key = np.full(C * NB, INF, np.int64)
    act_id = np.zeros(C * NB, np.int64)
    act_wr = np.zeros(C * NB, np.bool_)
    act_off = np.zeros(C * NB, np.int64)  # bk_fn offset of the active request: 0 RD, CNB WR
    a_bank = np.zeros(C * NB, np.int64)    # banks of channel c's active requests: [c*NB, +a_n)
    a_pos = np.zeros(C * NB, np.int64)     # position of a bank in a_bank
    a_n = np.zeros(C, np.int64)
    prio = np.zeros(C, np.int64)
    wmode = np.zeros(C, np.bool_)
    next_eval = np.full(C, INF, np.int64)
    last_depart = np.full(C, neg, np.int64)
    # cached decision for next_eval[c]: source (0 active, 2 read, 3 write; -1 none), index (bank
    # for the active buffer, entry slot for a buffer), command
    c_src = np.full(C, -1, np.int64)
    c_j = np.zeros(C, np.int64)
    c_cmd = np.zeros(C, np.int64)
    cr = np.zeros(NCMD, np.int64)
    # per-bank local (bank + bank-group level) ready cycles, refreshed after every command for the
    # banks it affects: of a RD / WR row hit, and of the bank's other command bk_oq (ACT when the
    # bank is closed, PRE when open; bk_oth = INF when that PRE would close an active bank)
    bpg = NB // NG
    CNB = C * NB
    bk_fn = np.zeros(2 * CNB, np.int64)   # row-hit RD at [c*NB + b], WR at [CNB + c*NB + b]
    bk_oth = np.zeros(C * NB, np.int64)
    bk_oq = np.zeros(C * NB, np.int64)
    r_h = np.zeros(NB, np.int64)
    r_o = np.zeros(NB, np.int64)

    i = 0                      # next request to offer
    front_k = offer[0] if n > 0 else INF   # iteration at which the frontend next tries
    front_wait = False         # blocked: full buffer (retry after an issue) or chain in flight
    done = 0
    stop_cycle = -1
    next_ref = nrefi if refresh_on else INF

    while done < n or i < n:
        t = INF
        if i < n and not front_wait:
            t = front_k + 1
        for c in range(C):
            if next_eval[c] < t:
                t = next_eval[c]
        if next_ref < t and (done < n or i < n):
            t = next_ref
        if t == INF:
            return stop_cycle, 1

        # ---- frontend at iteration t - 1 (controller clock before tick t) ----
        if i < n and not front_wait and front_k == t - 1:
            k = t - 1
            c = chn[i]
            a = addr[i]
            w = 1 if isw[i] else 0
            b = bki[i]
            match = False
            wb = (c * 2 + 1) * QM
            s = l_head[(c * 2 + 1) * NB + b]   # a same-address write is in the same bank
            while s >= 0:
                if addr[e_id[wb + s]] == a:
                    match = True
                    break
                s = e_next[wb + s]
            accepted = False
            if match:  # read forwarded from / write coalesced into the write buffer
                accepted = True
                if w:
                    comp[i] = k
                else:
                    comp[i] = _mx(k + 1, last_depart[c] + 1)
                    last_depart[c] = comp[i]
                done += 1
            elif q_n[c, w] < cap[w]:
                base = (c * 2 + w) * QM
                L = (c * 2 + w) * NB + b
                s = free_head[c * 2 + w]
                free_head[c * 2 + w] = e_next[base + s]
                e_id[base + s] = i
                e_row[base + s] = row[i]
                e_acc[base + s] = k
                e_b[base + s] = b
                e_next[base + s] = -1
                tl = l_tail[L]
                e_prev[base + s] = tl
                if tl >= 0:
                    e_next[base + tl] = s
                else:
                    l_head[L] = s
                l_tail[L] = s
                if l_n[L] == 0:
                    nz_mask[c * 2 + w] |= np.uint64(1) << np.uint64(b)
                l_n[L] += 1
                orow = open_row[c, b]
                new_h = False
                new_o = False
                if orow == row[i]:
                    l_nh[L] += 1
                    if l_h[L] < 0:
                        l_h[L] = s
                        hkey[L] = (k << sh) | (b << 1)
                        new_h = True
                elif l_o[L] < 0:
                    l_o[L] = s
                    okey[L] = (k << sh) | (b << 1) | 1
                    new_o = True
                q_n[c, w] += 1
                accepted = True
                # keep or refine the cached decision of channel c
                if c_src[c] < 0 or prio[c] > 0:
                    if next_eval[c] > t:
                        next_eval[c] = t
                        c_src[c] = -1
                elif _next_mode(wmode[c], q_n[c, 0], q_n[c, 1], w_enter, w_leave) != wmode[c]:
                    next_eval[c] = t
                    c_src[c] = -1
                elif (w == 1) == wmode[c] and (new_h or new_o):
                    g = bgi[i]
                    q = -1
                    if orow < 0:
                        q = ACT
                    elif new_h:
                        q = WR if w else RD
                    elif bank_act[c, b] == 0 and not (rhf and l_h[L] >= 0):
                        q = PRE
                    if q >= 0:
                        r = _mx(_mx(_mx(chan_rdy[c, q], rank_rdy[c, q]),
                                    _mx(bg_rdy[c, g, q], bank_rdy[c, b, q])), t)
                        ne = next_eval[c]
                        if r < ne or (rhf and r == ne and new_h and c_src[c] == 2 + w
                                      and c_cmd[c] != q):
                            next_eval[c] = r
                            c_src[c] = 2 + w
                            c_j[c] = s
                            c_cmd[c] = q
            if accepted:
                acc[i] = k
                i += 1
                if i == n:
                    stop_cycle = k
                    for cc in range(C):
                        refresh_at_stop[cc] = refresh_total[cc]
                elif chain:
                    if comp[i - 1] >= 0:
                        front_k = _mx(_mx(comp[i - 1], k + 1), offer[i])
                    else:
                        front_wait = True
                else:
                    front_k = _mx(k + 1, offer[i])
                    # the next request's buffer is full: wait for an entry to leave instead of
                    # retrying every cycle (same outcome: only an issue from that buffer frees an
                    # entry, and it releases the frontend at its tick; the write buffer can only
                    # shrink meanwhile, so a request not forwarded now will not be later)
                    c2 = chn[i]
                    w2 = 1 if isw[i] else 0
                    if q_n[c2, w2] >= cap[w2]:
                        wb = (c2 * 2 + 1) * QM
                        s = l_head[(c2 * 2 + 1) * NB + bki[i]]
                        while s >= 0 and addr[e_id[wb + s]] != addr[i]:
                            s = e_next[wb + s]
                        if s < 0:
                            front_wait = True
            else:
                front_wait = True
            if done == n and i == n:
                break

        # ---- tick t ----
        if t == next_ref:
            next_ref += nrefi
            for c in range(C):
                prio[c] += 1
                next_eval[c] = t
                c_src[c] = -1
        # channels due at t (a data-dependent walk rather than a counted loop: LLVM would
        # otherwise keep a strength-reduced pointer per per-channel array, spilled to the stack)
        cn = 0
        while True:
            while cn < C and next_eval[cn] != t:
                cn += 1
            if cn >= C:
                break
            c = cn
            cn += 1
            cb0 = c * NB
            src = -1
            bj = -1
            cmd = -1
            if c_src[c] >= 0:
                src = c_src[c]
                bj = c_j[c]
                cmd = c_cmd[c]
                c_src[c] = -1
            else:
                for q in range(NCMD):
                    cr[q] = _mx(chan_rdy[c, q], rank_rdy[c, q])
                # (a) active buffer: the oldest request ready now (ja), else the earliest ready
                # cycle a_min and the oldest request ready then (ja_min); per bank
                ja = -1
                a_min = INF
                ja_min = -1
                if a_n[c] > 0:
                    # one pass: min of (cycles until ready, saturated) << DSH | key
                    cr_rd = cr[RD]
                    cr_wr = cr[WR]
                    kbest = INF
                    for j in range(a_n[c]):
                        ka = cb0 + a_bank[_u(cb0 + j)]
                        ra = _mx(cr_wr if act_wr[_u(ka)] else cr_rd,
                                 bk_fn[_u(act_off[_u(ka)] + ka)])
                        d = min(_mx(ra - t, 0), DSAT)
                        kbest = min(kbest, (d << DSH) | act_key[_u(ka)])
                    d = kbest >> DSH
                    if d == 0:
                        ja = (kbest >> 1) & bmask
                    elif d < DSAT:
                        a_min = t + d
                        ja_min = (kbest >> 1) & bmask
                    else:  # every candidate is DSAT or more cycles away: exact two passes
                        for j in range(a_n[c]):
                            bb = a_bank[cb0 + j]
                            ra = (_mx(cr_wr, bk_fn[CNB + cb0 + bb]) if act_wr[cb0 + bb]
                                  else _mx(cr_rd, bk_fn[cb0 + bb]))
                            r_h[bb] = ra
                            a_min = min(a_min, ra)
                        kbest = INF
                        for j in range(a_n[c]):
                            bb = a_bank[cb0 + j]
                            kbest = min(kbest, act_key[cb0 + bb] if r_h[bb] <= a_min else INF)
                        ja_min = (kbest >> 1) & bmask
                if ja >= 0:
                    src = 0
                    bj = ja
                    cmd = WR if act_wr[cb0 + ja] else RD
                elif prio[c] > 0:
                    # (b) refresh: PREab while a bank is open, then REFab
                    q = PREA if open_cnt[c] > 0 else REF
                    r = cr[q]
                    blocked = q == PREA and a_n[c] > 0  # PREab would close an active bank
                    if r <= t and not blocked:
                        src = 1
                        cmd = q
                    else:
                        next_eval[c] = a_min if blocked else min(a_min, r)
                        continue
                else:
                    # (c) write-mode update, then the scheduler over one buffer: per bank, the
                    # oldest hit (ready at max(cr[RD/WR], bank-local)) and the oldest non-hit
                    # (the bank's ACT or PRE)
                    wmode[c] = _next_mode(wmode[c], q_n[c, 0], q_n[c, 1], w_enter, w_leave)
                    w = 1 if wmode[c] else 0
                    final = WR if w else RD
                    Lb = (c * 2 + w) * NB
                    fb = w * CNB + cb0
                    cr_act = cr[ACT]
                    cr_pre = cr[PRE]
                    cr_fin = cr[final]
                    q_min = INF
                    jq = -1
                    jq_min = -1
                    q = -1
                    if q_n[c, w] > 0:
                        # one branch-free (vectorized) pass over the banks from the lowest to the
                        # highest one holding requests (empty banks have INF keys): min of
                        # (cycles until ready, saturated at DSAT) << DSH | non-hit flag
                        # (row-hit-first) | key, for each bank's oldest hit and oldest non-hit
                        kbest = INF
                        m = nz_mask[c * 2 + w]
                        b_lo = np.int64(trailing_zeros(m))
                        b_hi = 64 - np.int64(leading_zeros(m))
                        for bb in range(b_lo, b_hi):
                            hk = hkey[_u(Lb + bb)]
                            ok = okey[_u(Lb + bb)]
                            rh = _mx(cr_fin, bk_fn[_u(fb + bb)])
                            is_act = bk_oq[_u(cb0 + bb)] == ACT
                            ro = _mx(cr_act if is_act else cr_pre, bk_oth[_u(cb0 + bb)])
                            dh = min(_mx(rh - t, 0), DSAT)
                            do = min(_mx(ro - t, 0), DSAT)
                            # a PRE blocked by the active buffer has ro = INF, so do = DSAT: it
                            # only matters when everything is DSAT away (exact passes below);
                            # row-hit-first: no PRE while an older hit to the open row waits
                            po = (do << DSH) | (ok + ohi)
                            po = INF if (rhf and not is_act and hk < ok) else po
                            kbest = min(kbest, min((dh << DSH) | hk, po))
                        if kbest < INF:
                            d = kbest >> DSH
                            if d == DSAT:  # all DSAT or more cycles away: exact two passes
                                m = nz_mask[c * 2 + w]
                                while m:
                                    bb = np.int64(trailing_zeros(m))
                                    m &= m - np.uint64(1)
                                    hk = hkey[Lb + bb]
                                    ok = okey[Lb + bb]
                                    rh = _mx(cr_fin, bk_fn[fb + bb])
                                    rh = rh if hk < INF else INF
                                    is_act = bk_oq[cb0 + bb] == ACT
                                    ro = _mx(cr_act if is_act else cr_pre, bk_oth[cb0 + bb])
                                    ro = ro if ok < INF and (is_act or not rhf or ok < hk) else INF
                                    r_h[bb] = rh
                                    r_o[bb] = ro
                                    q_min = min(q_min, min(rh, ro))
                                kbest = INF
                                if q_min < INF:
                                    m = nz_mask[c * 2 + w]
                                    while m:
                                        bb = np.int64(trailing_zeros(m))
                                        m &= m - np.uint64(1)
                                        kh = hkey[Lb + bb] if r_h[bb] <= q_min else INF
                                        ko = okey[Lb + bb] + ohi if r_o[bb] <= q_min else INF
                                        kbest = min(kbest, min(kh, ko))
                            else:
                                q_min = t + d
                            if kbest < INF:
                                bb = (kbest >> 1) & bmask
                                if kbest & 1:
                                    slot = l_o[_u(Lb + bb)]
                                    q = bk_oq[_u(cb0 + bb)]
                                else:
                                    slot = l_h[_u(Lb + bb)]
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
                            next_eval[c] = INF
                        elif a_min <= q_min:
                            next_eval[c] = a_min
                            c_src[c] = 0
                            c_j[c] = ja_min
                            c_cmd[c] = WR if act_wr[cb0 + ja_min] else RD
                        else:
                            next_eval[c] = q_min
                            c_src[c] = 2 + w
                            c_j[c] = jq_min
                            c_cmd[c] = q
                        continue

            # ---- issue cmd at t ----
            w = 0
            if src == 0:
                b = bj
                best = act_id[cb0 + b]
                g = bgi[best]
            elif src >= 2:
                w = src - 2
                best = e_id[(c * 2 + w) * QM + bj]
                b = e_b[(c * 2 + w) * QM + bj]
                g = bgi[best]
            else:
                best = -1
                g = 0
                b = 0
            # constraint table (calibration doc section 5) for cmd issued at t
            n_bl = p[P_NBL]
            if cmd == ACT or cmd == RD or cmd == WR:  # 2-cycle commands occupy the CA bus
                for k in range(NCMD):
                    chan_rdy[c, k] = _mx(chan_rdy[c, k], t + 2)
            if cmd == RD:
                chan_rdy[c, RD] = _mx(chan_rdy[c, RD], t + n_bl)
                rank_rdy[c, RD] = _mx(rank_rdy[c, RD], t + p[P_NCCDS])
                rank_rdy[c, WR] = _mx(rank_rdy[c, WR], t + p[P_NCL] + n_bl + 2 - p[P_NCWL] + 2)
                rank_rdy[c, PREA] = _mx(rank_rdy[c, PREA], t + p[P_NRTP] + 1)
                bg_rdy[c, g, RD] = _mx(bg_rdy[c, g, RD], t + p[P_NCCDL])
                bank_rdy[c, b, PRE] = _mx(bank_rdy[c, b, PRE], t + p[P_NRTP] + 1)
            elif cmd == WR:
                wr2pre = p[P_NCWL] + n_bl + p[P_NWR] + 1
                chan_rdy[c, WR] = _mx(chan_rdy[c, WR], t + n_bl)
                rank_rdy[c, WR] = _mx(rank_rdy[c, WR], t + p[P_NCCDS_WR])
                rank_rdy[c, RD] = _mx(rank_rdy[c, RD], t + p[P_NCWL] + n_bl + p[P_NWTRS])
                rank_rdy[c, PREA] = _mx(rank_rdy[c, PREA], t + wr2pre)
                bg_rdy[c, g, WR] = _mx(bg_rdy[c, g, WR], t + p[P_NCCDL_WR])
                bg_rdy[c, g, RD] = _mx(bg_rdy[c, g, RD], t + p[P_NCWL] + n_bl + p[P_NWTRL])
                bank_rdy[c, b, PRE] = _mx(bank_rdy[c, b, PRE], t + wr2pre)
            elif cmd == ACT:
                rank_rdy[c, ACT] = _mx(rank_rdy[c, ACT], t + p[P_NRRDS])
                faw[c, faw_pos[c]] = t
                faw_pos[c] = (faw_pos[c] + 1) & 3
                faw_cnt[c] += 1
                if faw_cnt[c] >= 4:  # the 5th ACT waits nFAW after the 4th most recent one
                    rank_rdy[c, ACT] = _mx(rank_rdy[c, ACT], faw[c, faw_pos[c]] + p[P_NFAW])
                rank_rdy[c, PREA] = _mx(rank_rdy[c, PREA], t + p[P_NRAS] + 1)
                rank_rdy[c, REF] = _mx(rank_rdy[c, REF], t + p[P_NRC] + 1)
                bg_rdy[c, g, ACT] = _mx(bg_rdy[c, g, ACT], t + p[P_NRRDL])
                bank_rdy[c, b, ACT] = _mx(bank_rdy[c, b, ACT], t + p[P_NRC])
                bank_rdy[c, b, RD] = _mx(bank_rdy[c, b, RD], t + p[P_NRCD])
                bank_rdy[c, b, WR] = _mx(bank_rdy[c, b, WR], t + p[P_NRCD])
                bank_rdy[c, b, PRE] = _mx(bank_rdy[c, b, PRE], t + p[P_NRAS] + 1)
            elif cmd == PRE:
                rank_rdy[c, PRE] = _mx(rank_rdy[c, PRE], t + p[P_NPPD])
                rank_rdy[c, PREA] = _mx(rank_rdy[c, PREA], t + p[P_NPPD])
                rank_rdy[c, REF] = _mx(rank_rdy[c, REF], t + p[P_NRP])
                bank_rdy[c, b, ACT] = _mx(bank_rdy[c, b, ACT], t + p[P_NRP] - 1)
            elif cmd == PREA:
                rank_rdy[c, ACT] = _mx(rank_rdy[c, ACT], t + p[P_NRP] - 1)
                rank_rdy[c, PRE] = _mx(rank_rdy[c, PRE], t + p[P_NPPD])
                rank_rdy[c, PREA] = _mx(rank_rdy[c, PREA], t + p[P_NPPD])
                rank_rdy[c, REF] = _mx(rank_rdy[c, REF], t + p[P_NRP])
            else:  # REF
                rank_rdy[c, ACT] = _mx(rank_rdy[c, ACT], t + p[P_NRFC] - 1)
                rank_rdy[c, PREA] = _mx(rank_rdy[c, PREA], t + p[P_NRFC])
            if src == 1:
                if cmd == PREA:
                    for bb in range(NB):
                        open_row[c, bb] = -1
                    open_cnt[c] = 0
                    for ww in range(2):
                        for bb in range(NB):
                            _classify((c * 2 + ww) * NB + bb, (c * 2 + ww) * QM, -1, sh,
                                      l_head, l_h, l_o, l_nh, hkey, okey, e_row, e_acc, e_next)
                else:
                    prio[c] -= 1
                    refresh_total[c] += 1
            else:
                if first[best] < 0:
                    first[best] = t
                    cls[best] = 1 if cmd == ACT else (2 if cmd == PRE else 0)
                if src >= 2 and cmd != PRE:
                    # remove the entry from its bank list (ACT moves it to the active buffer,
                    # RD/WR retires it) and return its slot to the pool
                    base = (c * 2 + w) * QM
                    L = (c * 2 + w) * NB + b
                    s = bj
                    prv = e_prev[base + s]
                    nxt = e_next[base + s]
                    if prv >= 0:
                        e_next[base + prv] = nxt
                    else:
                        l_head[L] = nxt
                    if nxt >= 0:
                        e_prev[base + nxt] = prv
                    else:
                        l_tail[L] = prv
                    l_n[L] -= 1
                    if l_n[L] == 0:
                        nz_mask[c * 2 + w] &= ~(np.uint64(1) << np.uint64(b))
                    e_next[base + s] = free_head[c * 2 + w]
                    free_head[c * 2 + w] = s
                    q_n[c, w] -= 1
                    if cmd != ACT:
                        # the retired entry was the oldest hit: the next one is younger
                        l_nh[L] -= 1
                        orow = open_row[c, b]
                        h = -1
                        if l_nh[L] > 0:
                            s = nxt
                            while e_row[base + s] != orow:
                                s = e_next[base + s]
                            h = s
                        l_h[L] = h
                        hkey[L] = (e_acc[base + h] << sh) | (b << 1) if h >= 0 else INF
                if cmd == ACT:
                    open_row[c, b] = row[best]
                    open_cnt[c] += 1
                    bank_act[c, b] = 1
                    act_key[cb0 + b] = (acc[best] << sh) | (b << 1)
                    act_id[cb0 + b] = best
                    act_wr[cb0 + b] = isw[best]
                    act_off[cb0 + b] = CNB if isw[best] else 0
                    a_bank[cb0 + a_n[c]] = b
                    a_pos[cb0 + b] = a_n[c]
                    a_n[c] += 1
                    for ww in range(2):
                        _classify((c * 2 + ww) * NB + b, (c * 2 + ww) * QM, row[best], sh,
                                  l_head, l_h, l_o, l_nh, hkey, okey, e_row, e_acc, e_next)
                elif cmd == PRE:
                    open_row[c, b] = -1
                    open_cnt[c] -= 1
                    for ww in range(2):
                        _classify((c * 2 + ww) * NB + b, (c * 2 + ww) * QM, -1, sh,
                                  l_head, l_h, l_o, l_nh, hkey, okey, e_row, e_acc, e_next)
                else:  # RD / WR: the request retires
                    fin[best] = t
                    if cmd == RD:
                        comp[best] = t + rl
                        last_depart[c] = comp[best]
                    else:
                        comp[best] = t
                    done += 1
                    if chain and front_wait and i < n and best == i - 1:
                        front_wait = False
                        front_k = _mx(_mx(comp[best], acc[best] + 1), offer[i])
                    if src == 0:
                        bank_act[c, b] = 0
                        act_key[cb0 + b] = INF
                        a_n[c] -= 1
                        j = a_pos[cb0 + b]
                        last = a_bank[cb0 + a_n[c]]
                        a_bank[cb0 + j] = last
                        a_pos[cb0 + last] = j
            # refresh the per-bank tables where their inputs changed: PREab all banks; RD / WR the
            # row-hit tables of the bank group (its RD / WR ready cycles moved); ACT the closed
            # banks of the group (its ACT ready cycle moved); every command but REF its own bank
            if cmd == PREA:
                for gg in range(NG):
                    gi = (c * NG + gg) * NCMD
                    g_rd = bg_flat[_u(gi + RD)]
                    g_wr = bg_flat[_u(gi + WR)]
                    g_act = bg_flat[_u(gi + ACT)]
                    for bb in range(gg * bpg, gg * bpg + bpg):
                        k = cb0 + bb
                        bi = k * NCMD
                        bk_fn[_u(k)] = _mx(g_rd, bank_flat[_u(bi + RD)])
                        bk_fn[_u(CNB + k)] = _mx(g_wr, bank_flat[_u(bi + WR)])
                        closed = open_flat[_u(k)] < 0
                        bk_oq[_u(k)] = ACT if closed else PRE
                        oth = INF if act_flat[_u(k)] != 0 else bank_flat[_u(bi + PRE)]
                        bk_oth[_u(k)] = _mx(g_act, bank_flat[_u(bi + ACT)]) if closed else oth
            elif cmd != REF:
                gi = (c * NG + g) * NCMD
                g_rd = bg_flat[_u(gi + RD)]
                g_wr = bg_flat[_u(gi + WR)]
                g_act = bg_flat[_u(gi + ACT)]
                if cmd == RD or cmd == WR:
                    for bb in range(g * bpg, g * bpg + bpg):
                        k = cb0 + bb
                        bi = k * NCMD
                        bk_fn[_u(k)] = _mx(g_rd, bank_flat[_u(bi + RD)])
                        bk_fn[_u(CNB + k)] = _mx(g_wr, bank_flat[_u(bi + WR)])
                elif cmd == ACT:
                    for bb in range(g * bpg, g * bpg + bpg):
                        k = cb0 + bb
                        ba = _mx(g_act, bank_flat[_u(k * NCMD + ACT)])
                        bk_oth[_u(k)] = ba if open_flat[_u(k)] < 0 else bk_oth[_u(k)]
                k = cb0 + b
                bi = k * NCMD
                bk_fn[_u(k)] = _mx(g_rd, bank_flat[_u(bi + RD)])
                bk_fn[_u(CNB + k)] = _mx(g_wr, bank_flat[_u(bi + WR)])
                closed = open_flat[_u(k)] < 0
                bk_oq[_u(k)] = ACT if closed else PRE
                oth = INF if act_flat[_u(k)] != 0 else bank_flat[_u(bi + PRE)]
                bk_oth[_u(k)] = _mx(g_act, bank_flat[_u(bi + ACT)]) if closed else oth
            # a blocked frontend retries once the buffer it waits for lost an entry (ACT moves a
            # request to the active buffer, RD/WR retires it)
            if (front_wait and not chain and i < n and chn[i] == c and src >= 2
                    and cmd != PRE and (src == 3) == isw[i]):
                front_wait = False
                front_k = _mx(t, offer[i])
            next_eval[c] = t + 2 if (cmd == ACT or cmd == RD or cmd == WR) else t + 1
    return stop_cycle, 0


@njit(cache=True)
def simulate_groups_kernel(p, start, offer, chn, bgi, bki, row, addr, isw,
                           acc, first, cls, fin, comp, refresh_at_stop, refresh_total, stop):
    """Run ``G = start.size - 1`` independent controllers: group ``g`` is requests
    ``start[g]:start[g+1]`` (each group in its own offer order, cycles counted from 0 for each),
    with its own frontend, queues, banks and refresh clock. Per-request arrays as in
    :func:`simulate_kernel`; ``refresh_at_stop``, ``refresh_total`` have shape (G, C), ``stop``
    (G,) receives each group's last-acceptance cycle. Returns the first deadlocked group or -1."""
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
            return g
    return -1
