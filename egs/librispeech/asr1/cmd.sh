# shellcheck shell=bash
# Job runners. Local machine (default): utils/run.pl. On a Slurm cluster (see docs/cluster.md):
#   cmd_backend=slurm ./run.sh --ngpu 4     # training jobs get 4 GPUs, decoding jobs 1
cmd_backend=${cmd_backend:-local}
if [ "${cmd_backend}" = local ]; then
  export train_cmd=${train_cmd:-utils/run.pl}
  export decode_cmd=${decode_cmd:-utils/run.pl}
elif [ "${cmd_backend}" = slurm ]; then
  export train_cmd=${train_cmd:-"utils/slurm.pl --mem 64G --gpu 4 --time 3-00:00:00"}
  export decode_cmd=${decode_cmd:-"utils/slurm.pl --mem 16G --gpu 1"}
else
  echo "cmd.sh: unknown cmd_backend=${cmd_backend} (local or slurm)" >&2
  return 1
fi
