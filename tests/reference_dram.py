"""Slow reference: the DDR5 controller kernel as it was before the per-bank restructuring.

A verbatim copy of ``prodigy_sim/dram/_kernel.py`` (Ramulator-like FR-FCFS only) that scans the
whole buffer once per issued command. ``tests/test_dram_kernel_equivalence.py`` checks the
production kernel against it request by request. :func:`reference_simulate` has the signature
of ``prodigy_sim.dram._kernel.simulate_kernel``.
"""


from __future__ import annotations

import numpy as np
from numba import njit

ACT, PRE, PREA, RD, WR, REF = 0, 1, 2, 3, 4, 5
NCMD = 6
INF = np.iinfo(np.int64).max // 4

# indices into the int64 parameter vector handed to the kernel
(P_NBL, P_NCL, P_NCWL, P_NRCD, P_NRP, P_NRAS, P_NRC, P_NWR, P_NRTP, P_NPPD, P_NCCDS, P_NCCDL,
 P_NCCDS_WR, P_NCCDL_WR, P_NRRDS, P_NRRDL, P_NWTRS, P_NWTRL, P_NFAW, P_NRFC, P_NREFI,
 P_CHANNELS, P_BANKS, P_BANK_GROUPS, P_RQ, P_WQ, P_W_ENTER, P_W_LEAVE, P_REFRESH, P_CHAIN,
 P_COUNT) = range(31)


@njit(cache=True, inline="always")
def _mx(a, b):
    return a if a > b else b


@njit(cache=True, inline="always")
def _next_mode(wmode, n_read, n_write, w_enter, w_leave):
    """Ramulator ``set_write_mode``: the mode after one update with these buffer sizes."""
    if not wmode:
        return n_write >= w_enter or n_read == 0
    return not (n_write <= w_leave and n_read != 0)


@njit(cache=True)
def reference_simulate(p, offer, chn, bgi, bki, row, addr, isw,
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
    youngest request wins only if it is ready strictly earlier) unless it changes the write mode.
    """
    n = offer.shape[0]
    C = p[P_CHANNELS]
    NB = p[P_BANKS]
    NG = p[P_BANK_GROUPS]
    QM = max(p[P_RQ], p[P_WQ])
    rl = p[P_NCL] + p[P_NBL]
    chain = p[P_CHAIN] != 0
    refresh_on = p[P_REFRESH] != 0
    nrefi = p[P_NREFI]
    w_enter = p[P_W_ENTER]
    w_leave = p[P_W_LEAVE]

    neg = -(1 << 40)
    chan_rdy = np.zeros((C, NCMD), np.int64)
    rank_rdy = np.zeros((C, NCMD), np.int64)
    bg_rdy = np.zeros((C, NG, NCMD), np.int64)
    bank_rdy = np.zeros((C, NB, NCMD), np.int64)
    faw = np.full((C, 4), neg, np.int64)
    faw_pos = np.zeros(C, np.int64)
    faw_cnt = np.zeros(C, np.int64)
    open_row = np.full((C, NB), -1, np.int64)
    open_cnt = np.zeros(C, np.int64)
    bank_act = np.zeros((C, NB), np.int64)
    # read (0) and write (1) buffers; entries carry their coordinates and arrival cycle. A removal
    # moves the last entry into the hole, so "oldest" is decided by arrival cycle (unique: at most
    # one request is accepted per cycle), which is Ramulator's list order
    cap = np.array([p[P_RQ], p[P_WQ]], np.int64)
    q_id = np.zeros(C * 2 * QM, np.int64)
    q_b = np.zeros(C * 2 * QM, np.int64)
    q_g = np.zeros(C * 2 * QM, np.int64)
    q_row = np.zeros(C * 2 * QM, np.int64)
    q_acc = np.zeros(C * 2 * QM, np.int64)
    q_n = np.zeros((C, 2), np.int64)
    # active buffer (requests whose ACT issued), at most one per bank
    a_id = np.zeros((C, NB), np.int64)
    a_b = np.zeros((C, NB), np.int64)
    a_g = np.zeros((C, NB), np.int64)
    a_cmd = np.zeros((C, NB), np.int64)
    a_acc = np.zeros((C, NB), np.int64)
    a_n = np.zeros(C, np.int64)
    prio = np.zeros(C, np.int64)
    wmode = np.zeros(C, np.bool_)
    next_eval = np.full(C, INF, np.int64)
    last_depart = np.full(C, neg, np.int64)
    # cached decision for next_eval[c]: source (0 active, 2 read, 3 write; -1 none), index, command
    c_src = np.full(C, -1, np.int64)
    c_j = np.zeros(C, np.int64)
    c_cmd = np.zeros(C, np.int64)
    cr = np.zeros(NCMD, np.int64)
    # per-bank local (bank + bank-group level) ready cycles, refreshed after every command for the
    # banks it affects: of a RD / WR row hit, and of the bank's other command bk_oq (ACT when the
    # bank is closed, PRE when open; bk_oth = INF when that PRE would close an active bank)
    bpg = NB // NG
    bk_rd = np.zeros(C * NB, np.int64)
    bk_wr = np.zeros(C * NB, np.int64)
    bk_oth = np.zeros(C * NB, np.int64)
    bk_oq = np.zeros(C * NB, np.int64)
    r_q = np.zeros(QM, np.int64)

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
            match = False
            for j in range(q_n[c, 1]):
                if addr[q_id[(c * 2 + 1) * QM + j]] == a:
                    match = True
                    break
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
                j = q_n[c, w]
                q_id[(c * 2 + w) * QM + j] = i
                q_b[(c * 2 + w) * QM + j] = bki[i]
                q_g[(c * 2 + w) * QM + j] = bgi[i]
                q_row[(c * 2 + w) * QM + j] = row[i]
                q_acc[(c * 2 + w) * QM + j] = t - 1
                q_n[c, w] = j + 1
                accepted = True
                # keep or refine the cached decision of channel c
                if c_src[c] < 0 or prio[c] > 0:
                    if next_eval[c] > t:
                        next_eval[c] = t
                        c_src[c] = -1
                elif _next_mode(wmode[c], q_n[c, 0], q_n[c, 1], w_enter, w_leave) != wmode[c]:
                    next_eval[c] = t
                    c_src[c] = -1
                elif (w == 1) == wmode[c]:
                    b = bki[i]
                    g = bgi[i]
                    orow = open_row[c, b]
                    q = -1
                    if orow < 0:
                        q = ACT
                    elif orow == row[i]:
                        q = WR if w else RD
                    elif bank_act[c, b] == 0:
                        q = PRE
                    if q >= 0:
                        r = _mx(_mx(_mx(chan_rdy[c, q], rank_rdy[c, q]),
                                    _mx(bg_rdy[c, g, q], bank_rdy[c, b, q])), t)
                        if r < next_eval[c]:
                            next_eval[c] = r
                            c_src[c] = 2 + w
                            c_j[c] = j
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
        for c in range(C):
            if next_eval[c] != t:
                continue
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
                # cycle a_min and the oldest request ready then (ja_min)
                ja = -1
                a_min = INF
                ja_min = -1
                for j in range(a_n[c]):
                    q = a_cmd[c, j]
                    r = _mx(cr[q], _mx(bg_rdy[c, a_g[c, j], q], bank_rdy[c, a_b[c, j], q]))
                    if r <= t:
                        if ja < 0 or a_acc[c, j] < a_acc[c, ja]:
                            ja = j
                    elif r < a_min or (r == a_min and a_acc[c, j] < a_acc[c, ja_min]):
                        a_min = r
                        ja_min = j
                if ja >= 0:
                    src = 0
                    bj = ja
                    cmd = a_cmd[c, ja]
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
                    # (c) write-mode update, then FR-FCFS over one buffer. Entries whose bank group
                    # changed since the last scan of this buffer get their command and local (bank
                    # + bank group) ready cycle recomputed; the ready cycle is then
                    # max(channel/rank ready of the command, local ready).
                    wmode[c] = _next_mode(wmode[c], q_n[c, 0], q_n[c, 1], w_enter, w_leave)
                    w = 1 if wmode[c] else 0
                    final = WR if w else RD
                    qb0 = (c * 2 + w) * QM
                    cb0 = c * NB
                    nq = q_n[c, w]
                    bk_fin = bk_wr if w else bk_rd
                    cr_act = cr[ACT]
                    cr_pre = cr[PRE]
                    cr_fin = cr[final]
                    # ready cycles and their minimum (branch-free: readiness is unpredictable)
                    q_min = INF
                    for j in range(nq):
                        b = q_b[qb0 + j]
                        hit = open_row[c, b] == q_row[qb0 + j]
                        cro = cr_act if bk_oq[cb0 + b] == ACT else cr_pre
                        r = _mx(cr_fin, bk_fin[cb0 + b]) if hit else _mx(cro, bk_oth[cb0 + b])
                        r_q[j] = r
                        q_min = min(q_min, r)
                    jq = -1
                    jq_min = -1
                    if q_min < INF:
                        # pass 2: oldest entry ready at max(t, q_min); key = arrival << 16 | index
                        limit = _mx(t, q_min)
                        kbest = INF
                        for j in range(nq):
                            key = (q_acc[qb0 + j] << 16) | j
                            kbest = min(kbest, key if r_q[j] <= limit else INF)
                        if q_min <= t:
                            jq = kbest & 0xFFFF
                            q_min = INF
                        else:
                            jq_min = kbest & 0xFFFF
                    if jq >= 0:
                        src = 2 + w
                        bj = jq
                        b = q_b[qb0 + jq]
                        cmd = final if open_row[c, b] == q_row[qb0 + jq] else bk_oq[cb0 + b]
                    else:
                        # nothing ready: cache the winner at the earliest ready cycle (the active
                        # buffer first on a tie, as step (a) precedes step (c))
                        if a_min == INF and q_min == INF:
                            next_eval[c] = INF
                        elif a_min <= q_min:
                            next_eval[c] = a_min
                            c_src[c] = 0
                            c_j[c] = ja_min
                            c_cmd[c] = a_cmd[c, ja_min]
                        else:
                            next_eval[c] = q_min
                            c_src[c] = 2 + w
                            c_j[c] = jq_min
                            b = q_b[qb0 + jq_min]
                            c_cmd[c] = (final if open_row[c, b] == q_row[qb0 + jq_min]
                                        else bk_oq[cb0 + b])
                        continue

            # ---- issue cmd at t ----
            if src == 0:
                best = a_id[c, bj]
                g = a_g[c, bj]
                b = a_b[c, bj]
            elif src >= 2:
                w = src - 2
                best = q_id[(c * 2 + w) * QM + bj]
                g = q_g[(c * 2 + w) * QM + bj]
                b = q_b[(c * 2 + w) * QM + bj]
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
                else:
                    prio[c] -= 1
                    refresh_total[c] += 1
            else:
                if first[best] < 0:
                    first[best] = t
                    cls[best] = 1 if cmd == ACT else (2 if cmd == PRE else 0)
                if cmd == ACT:
                    open_row[c, b] = row[best]
                    open_cnt[c] += 1
                    bank_act[c, b] = 1
                    j = a_n[c]
                    a_id[c, j] = best
                    a_b[c, j] = b
                    a_g[c, j] = g
                    a_cmd[c, j] = WR if isw[best] else RD
                    a_acc[c, j] = acc[best]
                    a_n[c] = j + 1
                elif cmd == PRE:
                    open_row[c, b] = -1
                    open_cnt[c] -= 1
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
                # remove from its buffer (ACT moves a request to the active buffer)
                if src == 0:
                    bank_act[c, b] = 0
                    last = a_n[c] - 1
                    a_id[c, bj] = a_id[c, last]
                    a_b[c, bj] = a_b[c, last]
                    a_g[c, bj] = a_g[c, last]
                    a_cmd[c, bj] = a_cmd[c, last]
                    a_acc[c, bj] = a_acc[c, last]
                    a_n[c] = last
                elif cmd != PRE:
                    w = src - 2
                    last = q_n[c, w] - 1
                    q_id[(c * 2 + w) * QM + bj] = q_id[(c * 2 + w) * QM + last]
                    q_b[(c * 2 + w) * QM + bj] = q_b[(c * 2 + w) * QM + last]
                    q_g[(c * 2 + w) * QM + bj] = q_g[(c * 2 + w) * QM + last]
                    q_row[(c * 2 + w) * QM + bj] = q_row[(c * 2 + w) * QM + last]
                    q_acc[(c * 2 + w) * QM + bj] = q_acc[(c * 2 + w) * QM + last]
                    q_n[c, w] = last
            # a blocked frontend retries once the buffer it waits for lost an entry (ACT moves a
            # request to the active buffer, RD/WR retires it)
            # refresh the per-bank tables of the banks whose ready cycles or state changed
            if cmd != REF:
                lo = 0 if cmd == PREA else g * bpg
                hi = NB if cmd == PREA else lo + bpg
                for bb in range(lo, hi):
                    gg = bb // bpg
                    k = c * NB + bb
                    bk_rd[k] = _mx(bg_rdy[c, gg, RD], bank_rdy[c, bb, RD])
                    bk_wr[k] = _mx(bg_rdy[c, gg, WR], bank_rdy[c, bb, WR])
                    if open_row[c, bb] < 0:
                        bk_oq[k] = ACT
                        bk_oth[k] = _mx(bg_rdy[c, gg, ACT], bank_rdy[c, bb, ACT])
                    else:
                        bk_oq[k] = PRE
                        bk_oth[k] = INF if bank_act[c, bb] != 0 else bank_rdy[c, bb, PRE]
            if (front_wait and not chain and i < n and chn[i] == c and src >= 2
                    and cmd != PRE and (src == 3) == isw[i]):
                front_wait = False
                front_k = _mx(t, offer[i])
            next_eval[c] = t + 2 if (cmd == ACT or cmd == RD or cmd == WR) else t + 1
    return stop_cycle, 0
