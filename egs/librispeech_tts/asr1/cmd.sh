# shellcheck shell=bash
# Job runners. Local machine (default): utils/run.pl. On a Slurm cluster: utils/slurm.pl, e.g.
#   export train_cmd="utils/slurm.pl --mem 16G --gpu 1" decode_cmd="utils/slurm.pl --mem 8G"
cmd_backend=${cmd_backend:-local}
if [ "${cmd_backend}" = local ]; then
  export train_cmd=${train_cmd:-utils/run.pl}
  export decode_cmd=${decode_cmd:-utils/run.pl}
elif [ "${cmd_backend}" = slurm ]; then
  export train_cmd=${train_cmd:-"utils/slurm.pl --mem 16G"}
  export decode_cmd=${decode_cmd:-"utils/slurm.pl --mem 8G"}
else
  echo "cmd.sh: unknown cmd_backend=${cmd_backend} (local or slurm)" >&2
  return 1
fi
