"""A stand-in for Slurm's ``srun`` and ``scontrol`` (test-only; no Slurm here).

``python fake_slurm.py srun [OPTIONS] COMMAND ARGS...`` records its arguments
and environment as JSON in ``$FAKE_SLURM_RECORD`` and runs ``--ntasks`` copies
of ``COMMAND`` on this machine, each with the variables a real ``srun`` sets
for its task (``SLURM_PROCID``, ``SLURM_LOCALID``, ``SLURM_NODEID``,
``SLURM_NTASKS``, ``SLURM_NNODES``, ``SLURM_NODELIST``, ...). Tasks are placed
``--ntasks-per-node`` to a "node"; node ``k`` is the loopback address
``127.0.0.<k+1>``. With ``--kill-on-bad-exit=1`` the first task to fail stops
the others. The exit status is the first non-zero status of a task (0 when
all succeed).

``python fake_slurm.py scontrol show hostnames NODELIST`` prints the host
names of a comma-separated ``NODELIST``, one a line, as ``scontrol`` does.

The tests put two one-line shell scripts named ``srun`` and ``scontrol`` that
call this file first on ``PATH``.
"""
import json
import os
import subprocess
import sys
import time

#: srun options that take a value in the next argument when given without ``=``.
VALUE_OPTIONS = {'-p', '--partition', '-J', '--job-name', '-n', '--ntasks', '-c',
                 '--cpus-per-task', '--ntasks-per-node', '--gres', '-N', '--nodes',
                 '-w', '--nodelist', '-x', '--exclude', '-t', '--time', '--quotatype'}


def parse_srun(argv):
    """``({option: value}, command)``: the options before the first non-option."""
    options, i = {}, 0
    while i < len(argv) and argv[i].startswith('-'):
        arg = argv[i]
        if '=' in arg:
            key, value = arg.split('=', 1)
        elif arg in VALUE_OPTIONS:
            key, value = arg, argv[i + 1]
            i += 1
        else:
            key, value = arg, ''
        options[key] = value
        i += 1
    return options, argv[i:]


def srun(argv):
    options, command = parse_srun(argv)
    if not command:
        sys.exit('srun: fatal: no command to run')
    record = os.environ.get('FAKE_SLURM_RECORD')
    if record:
        with open(record, 'w') as f:
            json.dump(dict(argv=argv, env=dict(os.environ)), f, indent=1)
    ntasks = int(options.get('--ntasks', options.get('-n', '1')))
    per_node = int(options.get('--ntasks-per-node', ntasks))
    nnodes = (ntasks + per_node - 1) // per_node
    nodes = [f'127.0.0.{k + 1}' for k in range(nnodes)]
    kill_on_bad_exit = options.get('--kill-on-bad-exit', options.get('-K')) in ('', '1')
    procs = []
    for rank in range(ntasks):
        env = dict(os.environ)
        env.update(SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank % per_node),
                   SLURM_NODEID=str(rank // per_node), SLURM_NTASKS=str(ntasks),
                   SLURM_NPROCS=str(ntasks), SLURM_NNODES=str(nnodes),
                   SLURM_NODELIST=','.join(nodes), SLURM_JOB_NODELIST=','.join(nodes),
                   SLURMD_NODENAME=nodes[rank // per_node], SLURM_JOB_ID='4242',
                   SLURM_STEP_ID='0', SLURM_NTASKS_PER_NODE=str(per_node))
        name = options.get('--job-name', options.get('-J'))
        if name is not None:
            env['SLURM_JOB_NAME'] = name
        cpus = options.get('--cpus-per-task', options.get('-c'))
        if cpus is not None:
            env['SLURM_CPUS_PER_TASK'] = cpus
        procs.append(subprocess.Popen(command, env=env))
    status = 0
    while any(p.poll() is None for p in procs):
        failed = [p.returncode for p in procs if p.returncode not in (None, 0)]
        if failed and kill_on_bad_exit:
            for p in procs:
                if p.poll() is None:
                    p.kill()
            break
        time.sleep(0.1)
    for p in procs:
        p.wait()
        if p.returncode != 0 and status == 0:
            status = p.returncode if p.returncode > 0 else 128 - p.returncode
    return status


def scontrol(argv):
    if argv[:2] != ['show', 'hostnames'] or len(argv) != 3:
        sys.exit(f'scontrol: this stand-in only knows "show hostnames NODELIST", got {argv}')
    print('\n'.join(argv[2].split(',')))
    return 0


if __name__ == '__main__':
    tool, args = sys.argv[1], sys.argv[2:]
    sys.exit(srun(args) if tool == 'srun' else scontrol(args))
