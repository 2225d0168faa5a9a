# shellcheck shell=bash
# Job runners, as ESPnet's: train_cmd for CPU jobs (features, statistics), cuda_cmd for training (the stage script
# adds --gpu ${ngpu}), decode_cmd for decoding (CPU). Local machine (default): utils/run.pl. On a Slurm cluster
# (docs/cluster.md): cmd_backend=slurm ./run.sh --ngpu 1, or export any of the three with utils/slurm.pl's options.
cmd_backend=${cmd_backend:-local}
if [ "${cmd_backend}" = local ]; then
  export train_cmd=${train_cmd:-utils/run.pl}
  export cuda_cmd=${cuda_cmd:-utils/run.pl}
  export decode_cmd=${decode_cmd:-utils/run.pl}
elif [ "${cmd_backend}" = slurm ]; then
  export train_cmd=${train_cmd:-"utils/slurm.pl --mem 4G"}
  export cuda_cmd=${cuda_cmd:-"utils/slurm.pl --mem 16G"}
  export decode_cmd=${decode_cmd:-"utils/slurm.pl --mem 8G"}
else
  echo "cmd.sh: unknown cmd_backend=${cmd_backend} (local or slurm)" >&2
  return 1
fi
