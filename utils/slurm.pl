#!/usr/bin/env perl
# Run a command, or N copies of it with JOB replaced by 1..N, as one Slurm job array; run.pl's interface.
use strict;
use warnings;
use Cwd qw(getcwd);
use File::Basename qw(basename dirname);
use File::Path qw(make_path);
use File::Spec;
use Fcntl qw(:flock);

my $usage = <<'END';
Usage: slurm.pl [options] [JOB=1:N] <log-file> <command> [<arg>...]
  slurm.pl --mem 8G --gpu 1 JOB=1:4 exp/x/log/decode.JOB.log python -m espnet_llm.bin.asr_inference --part JOB
  slurm.pl --dry-run --num-threads 4 exp/x/log/train.log python -m espnet_llm.bin.asr_train
Writes <log-dir>/q/<name>.<first>-<last>.sh (<name>.sh without JOB=; one case per job id, the command with JOB
replaced, as run.pl runs it), submits it with one "sbatch --array", polls squeue until the array has left the
queue, then reads each job's log. Slurm's own output of each task goes to <log-dir>/q/<name>.<first>-<last>-<task>.out.
A call holds its script (flock) until it ends: a concurrent call with the same log pattern and job range writes
<name>.<first>-<last>.2.sh.
Options:
  --mem M            memory per job (sbatch --mem=M)
  --num-threads N    CPUs per job (sbatch --cpus-per-task=N)
  --gpu N            GPUs per job (sbatch --gres=gpu:N; none when 0)
  --time T           time limit per job (sbatch --time=T)
  --max-jobs-run N   at most N array tasks at a time (--array=1-J%N); -tc N is the same
  --config F         Kaldi-style slurm.conf: "command sbatch ...", "option name=* --flag $0",
                     "option name=value --flags", "default name=value"; it replaces the built-in rules below
                     and may define further options (e.g. "option partition=* -p $0")
  --dry-run          write the script and print it and the sbatch command line; submit nothing
Built-in rules:
END
my $default_config = <<'END';
command sbatch
option mem=* --mem=$0
option num_threads=* --cpus-per-task=$0
default gpu=0
option gpu=0
option gpu=* --gres=gpu:$0
option time=* --time=$0
END
$usage .= join '', map { "  $_\n" } split /\n/, $default_config;
$usage .= <<'END';
Each log holds the command, host and start time, the command's output, then "# Ended (code C) at ...". Exit
status 1 if any job failed or left no "# Ended" line (killed by Slurm: see q/), after printing
"slurm.pl: F / N failed, log is in <log of the first failed job>".
END

sub fail { print STDERR "slurm.pl: @_\n"; exit 1 }

my (%cli, $max_jobs_run, $config_file);
my $dry_run = 0;
while (@ARGV && $ARGV[0] =~ /^-/) {
    my $switch = shift @ARGV;
    if ($switch eq '--help' || $switch eq '-h') { print $usage; exit 0; }
    if ($switch eq '--dry-run') {
        $dry_run = 1;
        $dry_run = (shift @ARGV) eq 'true' if @ARGV && $ARGV[0] =~ /^(true|false)$/;
        next;
    }
    my $value;
    if ($switch =~ /^(--[^=]+)=(.*)$/s) { ($switch, $value) = ($1, $2); }
    else {
        fail("option $switch needs a value") unless @ARGV;
        $value = shift @ARGV;
    }
    my $name = $switch eq '-tc' ? 'max_jobs_run' : ($switch =~ s/^--//r =~ tr/-/_/r);
    if ($name eq 'max_jobs_run') { $max_jobs_run = $value; }
    elsif ($name eq 'config') { $config_file = $value; }
    else { $cli{$name} = $value; }
}
fail("--max-jobs-run must be a positive integer, got '$max_jobs_run'")
    if defined $max_jobs_run && $max_jobs_run !~ /^[1-9]\d*$/;

my ($jobname, $first, $last) = (undef, 1, 1);
if (@ARGV && $ARGV[0] =~ /^([A-Za-z_]\w*)=(\d+)(?::(\d+))?$/) {
    ($jobname, $first, $last) = ($1, $2, $3 // $2);
    shift @ARGV;
    fail("empty job range $jobname=$first:$last") if $first > $last;
}
fail("expected a log file and a command\n$usage") if @ARGV < 2;
my $logfile = shift @ARGV;
if (defined $jobname && $last > $first && index($logfile, $jobname) < 0) {
    fail(($last - $first + 1) . " jobs would share the log file $logfile; put $jobname in its name");
}
# The same command line as run.pl builds (Kaldi's quoting; one argument = a shell command line).
my $command = @ARGV == 1 ? $ARGV[0] : join ' ', map { /^\S+$/ ? $_ : /"/ ? "'$_'" : "\"$_\"" } @ARGV;

sub substituted {
    my ($text, $id) = @_;
    $text =~ s/\Q$jobname\E/$id/g if defined $jobname;
    return $text;
}

sub shell_quote {
    my ($text) = @_;
    return $text =~ m{^[\w./:=,+%@-]+$} ? $text : "'" . ($text =~ s/'/'\\''/gr) . "'";
}

# ---------------------------------------------------------------- sbatch options from the config rules
sub sbatch_command {
    my $text = $default_config;
    if (defined $config_file) {
        open(my $fh, '<', $config_file) or fail("cannot read config $config_file: $!");
        local $/;
        $text = <$fh>;
        close($fh);
    }
    my (@base, %exact, %wildcard, %default);
    for my $line (split /\n/, $text) {
        $line =~ s/#.*$//;
        next unless $line =~ /\S/;
        my @words = split ' ', $line;
        my $kind = shift @words;
        if ($kind eq 'command') { @base = @words; next; }
        my ($name, $value) = (shift(@words) // '') =~ /^(\w+)=(.*)$/
            or fail("$config_file: cannot parse '$line'");
        if ($kind eq 'option') {
            if ($value eq '*') { $wildcard{$name} = \@words; } else { $exact{"$name=$value"} = \@words; }
        }
        elsif ($kind eq 'default') { $default{$name} = $value; }
        else { fail("config: unknown line kind '$kind' in '$line'"); }
    }
    fail("config: no 'command' line") unless @base;
    my %values = (%default, %cli);
    my @options;
    for my $name (sort keys %values) {
        my $value = $values{$name};
        if (my $words = $exact{"$name=$value"}) { push @options, @$words; }
        elsif ($words = $wildcard{$name}) { push @options, map { s/\$0/$value/gr } @$words; }
        else {
            my %known = map { s/=.*//r => 1 } keys %wildcard, keys %exact;
            my @known = sort keys %known;
            fail("option --" . ($name =~ tr/_/-/r) . " has no rule in the config (known: @known)");
        }
    }
    return (@base, @options);
}

my @sbatch = sbatch_command();
my $log_dir = dirname($logfile);
my $name = basename($logfile);
$name =~ s/\.?\Q$jobname\E//g if defined $jobname;
$name =~ s/\.log$//;
$name = 'job' if $name eq '';
my $queue_dir = File::Spec->rel2abs("$log_dir/q");
my $array = defined $jobname;
# One script per job range: a partial rerun submits one call per missing job, at once, with one log pattern. A call
# locks its script until it ends; a concurrent call with the same range and log pattern takes the next free name
# (<name>.2.sh, ...) instead of writing over a script that the other may not have submitted yet.
my $qbase = $array ? "$name.$first-$last" : $name;
make_path($queue_dir) unless -d $queue_dir;
my ($qname, $script_path, $script_fh);
for (my $n = 1; ; $n++) {
    $qname = $n == 1 ? $qbase : "$qbase.$n";
    $script_path = "$queue_dir/$qname.sh";
    open($script_fh, '>>', $script_path) or fail("cannot write $script_path: $!");
    last if flock($script_fh, LOCK_EX | LOCK_NB);
    last unless $!{EWOULDBLOCK};  # a file system without locks: this name, unlocked
    close($script_fh);
}

push @sbatch, "--job-name=$name", '--parsable', '--chdir=' . getcwd();
if ($array) {
    push @sbatch, "--array=$first-$last" . (defined $max_jobs_run ? "%$max_jobs_run" : ''),
        "--output=$queue_dir/$qname-%a.out";
}
else {
    push @sbatch, "--output=$queue_dir/$qname.out";
}
push @sbatch, $script_path;

# ---------------------------------------------------------------- the job script
my $threads = $cli{num_threads} // 1;
my $script = <<'END';
#!/usr/bin/env bash
# Written by slurm.pl. Each array task runs one job: the command with the job id put in, as run.pl would.
set -u
task=${SLURM_ARRAY_TASK_ID:-}
END
# With "--export=PATH" or NONE (Kaldi's slurm.conf) the job gets none of the submitting shell's variables: set the
# ones the jobs read, and source the recipe's path.sh (the venv, offline switches) as Kaldi's jobs do.
for my $var (qw(OMP_NUM_THREADS MKL_NUM_THREADS HF_HUB_OFFLINE TRANSFORMERS_OFFLINE HF_DATASETS_OFFLINE PYTHONPATH)) {
    $script .= "export $var=" . shell_quote($ENV{$var}) . "\n" if defined $ENV{$var};
}
$script .= "[ -f ./path.sh ] && . ./path.sh\n";
if ($array) {
    $script .= "case \"\${task}\" in\n";
    for my $id ($first .. $last) {
        $script .= "  $id) log=" . shell_quote(File::Spec->rel2abs(substituted($logfile, $id)))
            . "; cmd=" . shell_quote(substituted($command, $id)) . " ;;\n";
    }
    $script .= "  *) echo \"slurm.pl: this script has no job '\${task}'\" >&2; exit 1 ;;\nesac\n";
}
else {
    $script .= "log=" . shell_quote(File::Spec->rel2abs($logfile)) . "\ncmd=" . shell_quote($command) . "\n";
}
$script .= <<"END";
mkdir -p "\$(dirname "\${log}")"
printf '# %s\\n# Started at %s on %s (Slurm job %s)\\n#\\n' "\${cmd}" "\$(date)" "\$(hostname)" \\
  "\${SLURM_ARRAY_JOB_ID:-\${SLURM_JOB_ID:-none}}\${task:+_\${task}}" > "\${log}"
start=\$(date +%s)
code=0
bash -c "\${cmd}" >> "\${log}" 2>&1 || code=\$?
elapsed=\$((\$(date +%s) - start))
printf '# Accounting: time=%d threads=%s\\n# Ended (code %d) at %s, elapsed time %d seconds\\n' \\
  "\${elapsed}" @{[shell_quote($threads)]} "\${code}" "\$(date)" "\${elapsed}" >> "\${log}"
exit "\${code}"
END

# written through the locked handle, which stays open (and the lock held) until slurm.pl exits
truncate($script_fh, 0) or fail("cannot write $script_path: $!");
{
    my $old = select($script_fh);
    $| = 1;
    select($old);
}
print $script_fh $script or fail("cannot write $script_path: $!");
chmod 0755, $script_path;

my $sbatch_line = join ' ', map { shell_quote($_) } @sbatch;
if ($dry_run) {
    print STDERR "slurm.pl: dry run: would run: $sbatch_line\n";
    print $script;
    exit 0;
}

# ---------------------------------------------------------------- submit, wait, check the logs
# A log of an earlier run would make a job that never ran look finished: move it aside first, as run.pl does
# (x.log -> x.1.log -> x.2.log: a resumed training keeps its earlier logs), and remove Slurm's old output.
sub rotate {
    my ($path) = @_;
    return unless -e $path;
    my $stem = $path =~ s/\.log$//r;
    my $n = 1;
    $n++ while -e "$stem.$n.log";
    for (my $i = $n; $i > 1; $i--) { rename("$stem." . ($i - 1) . ".log", "$stem.$i.log") or fail("cannot rotate $path: $!") }
    rename($path, "$stem.1.log") or fail("cannot rotate $path: $!");
}
for my $id ($first .. $last) {
    rotate(substituted($logfile, $id));
    unlink($array ? "$queue_dir/$qname-$id.out" : "$queue_dir/$qname.out");
}
open(my $submit, '-|', @sbatch) or fail("cannot run sbatch: $!");
my $reply = join '', <$submit>;
close($submit) or fail("sbatch failed (exit status " . ($? >> 8) . "): $sbatch_line\n$reply");
my ($job_id) = $reply =~ /^(\d+)/ or fail("cannot find a job id in the reply of sbatch: '$reply'");

for my $sig (qw(INT TERM HUP)) {
    $SIG{$sig} = sub {
        system('scancel', $job_id);
        print STDERR "slurm.pl: stopped by SIG$sig; cancelled Slurm job $job_id\n";
        exit 1;
    };
}
# Pending reasons that no wait cures: the job asks for more than its partition, account or QOS can ever give.
my $never = qr/^(PartitionConfig|PartitionTimeLimit|PartitionNodeLimit|BadConstraints|InvalidAccount|InvalidQOS|
    QOSMaxWallDurationPerJobLimit|QOSMaxCpuPerJobLimit|QOSMaxMemoryPerJob|QOSMaxGRESPerJob|AssocMaxWallDurationPerJobLimit|
    AssocMaxCpuPerJobLimit|ReqNodeNotAvail,\s*UnavailableNodes:$|DependencyNeverSatisfied)/x;
sub states {  # task id ("" for a single job) -> [state, reason], from squeue; -t all lists ended jobs too
    my ($all) = @_;
    my $out = `squeue --noheader --array --jobs=$job_id @{[$all ? '-t all' : '']} --format='%K|%T|%r' 2>&1`;
    return (undef) if $? != 0 && $out !~ /Invalid job id/i;
    my %state;
    for (split /\n/, $out) {
        my ($task, $state, $reason) = split /\|/, $_, 3;
        next unless defined $reason;
        $task = '' if $task eq 'N/A';
        $state{$task} = [$state, $reason];
    }
    return \%state;
}
my $delay = 1;
while (1) {
    my $queued = states(0);
    if (defined $queued) {
        last unless %$queued;  # none pending or running (a purged job is an invalid id: done as well)
        my @stuck = grep { $_->[0] eq 'PENDING' && $_->[1] =~ $never } values %$queued;
        if (@stuck) {
            system('scancel', $job_id);
            fail("Slurm job $job_id can never start ($stuck[0][1]): it asks for more than the partition allows; "
                . "cancelled. The request: $sbatch_line");
        }
    }
    sleep $delay;
    $delay = $delay * 2 > 10 ? 10 : $delay * 2;
}
my $final = states(1) || {};

sub exit_code {
    my ($log) = @_;
    open(my $in, '<', $log) or return undef;
    my $code;
    while (<$in>) { $code = $1 if /^# Ended \(code (\d+)\)/; }
    close($in);
    return $code;
}

my @failed;
for my $id ($first .. $last) {
    my $log = substituted($logfile, $id);
    my $code = exit_code($log);
    my ($state, $reason) = @{$final->{$array ? $id : ''} // ['UNKNOWN', '']};
    # Shared file systems can show the last lines of a log late; a job Slurm killed will write none.
    my $killed = $state =~ /^(CANCELLED|TIMEOUT|OUT_OF_MEMORY|NODE_FAIL|PREEMPTED|BOOT_FAIL|DEADLINE)/;
    for (my $waited = 0; !defined $code && !$killed && $waited < 60; $waited += 5) {
        sleep 5;
        $code = exit_code($log);
    }
    if (!defined $code) {
        my $out = $array ? "$queue_dir/$qname-$id.out" : "$queue_dir/$qname.out";
        my $why = $state eq 'UNKNOWN' ? '' : " (Slurm: $state" . ($reason =~ /\S/ && $reason ne 'None' ? ", $reason" : '') . ")";
        my $tail = -s $out ? `tail -n 3 '$out'` : '';
        $tail =~ s/^/    /mg;
        print STDERR "slurm.pl: job $id left no '# Ended' line in $log$why; Slurm's output is in $out\n$tail";
    }
    push @failed, $id if !defined $code || $code != 0;
}
if (@failed) {
    print STDERR "slurm.pl: " . scalar(@failed) . " / " . ($last - $first + 1) . " failed, log is in "
        . substituted($logfile, $failed[0]) . "\n";
    exit 1;
}
exit 0;
