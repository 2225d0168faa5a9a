#!/usr/bin/env perl
# Run a command on this machine, or N copies of it in parallel with JOB replaced by 1..N (Kaldi's run.pl).
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Path qw(make_path);
use POSIX qw(strftime);
use Sys::Hostname qw(hostname);

my $usage = <<'END';
Usage: run.pl [options] [JOB=1:N] <log-file> <command> [<arg>...]
  run.pl JOB=1:4 exp/x/log/decode.JOB.log python -m espnet_llm.bin.asr_inference --part JOB --nparts 4
  run.pl exp/x/log/train.log python -m espnet_llm.bin.asr_train --config conf/train.yaml
Every occurrence of the variable name (JOB above; any name works) in the log file name and in the command is
replaced by the job id. Arguments without whitespace reach the shell as they are, so "\|" and ">" between
arguments make pipes and redirections, as with Kaldi; a command given as one argument is run as a shell
command line ('a | b; c').
Options:
  --max-jobs-run N   run at most N jobs at a time (default: the number of CPUs); -tc N is the same
  --mem M, --num-threads N, --gpu N, --time T, --config F
                     accepted so that a recipe can switch between run.pl and slurm.pl; run.pl records
                     --num-threads in each log and enforces none of them
Each log holds the command, host and start time, then the command's stdout and stderr, then
"# Ended (code C) at <date>, elapsed time S seconds". Exit status 1 if any job failed, after printing
"run.pl: F / N failed, log is in <log of the first failed job>". Jobs die with run.pl: INT/TERM/HUP to run.pl stop
every job's process group, and a job whose run.pl was killed (SIGKILL included) stops itself.
END

my %opt = (max_jobs_run => undef, mem => undef, num_threads => 1, gpu => 0, time => undef, config => undef);
while (@ARGV && $ARGV[0] =~ /^-/) {
    my $switch = shift @ARGV;
    if ($switch eq '--help' || $switch eq '-h') { print $usage; exit 0; }
    my $value;
    if ($switch =~ /^(--[^=]+)=(.*)$/s) { ($switch, $value) = ($1, $2); }
    else {
        fail("option $switch needs a value") unless @ARGV;
        $value = shift @ARGV;
    }
    my $name = $switch eq '-tc' ? 'max_jobs_run' : ($switch =~ s/^--//r =~ tr/-/_/r);
    fail("unknown option $switch (known: " . join(', ', map { '--' . tr/_/-/r } sort keys %opt) . ")")
        unless exists $opt{$name};
    $opt{$name} = $value;
}

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
my $max_jobs = $opt{max_jobs_run} // cpu_count();
fail("--max-jobs-run must be a positive integer, got '$max_jobs'") unless $max_jobs =~ /^[1-9]\d*$/;

# Kaldi's quoting: an argument without whitespace goes to the shell as is; others are quoted. A command given as
# one argument is a shell command line ("run.pl x.log 'a | b'"), never the name of a program with spaces in it.
my $command = @ARGV == 1 ? $ARGV[0] : join ' ', map { /^\S+$/ ? $_ : /"/ ? "'$_'" : "\"$_\"" } @ARGV;

sub fail { print STDERR "run.pl: @_\n"; exit 1 }

sub substituted {
    my ($text, $id) = @_;
    $text =~ s/\Q$jobname\E/$id/g if defined $jobname;
    return $text;
}

sub now { return strftime('%a %b %e %H:%M:%S %Z %Y', localtime) }

sub cpu_count {
    # GNU nproc answers OMP_NUM_THREADS when it is set (path.sh sets it to 1 per job): ask without it.
    local $ENV{OMP_NUM_THREADS};
    delete $ENV{OMP_NUM_THREADS};
    my $n = `nproc 2>/dev/null` // '';
    chomp $n;
    return $n =~ /^[1-9]\d*$/ ? $n : 1;
}

sub append_to {
    my ($path, $text, $mode) = @_;
    open(my $fh, $mode, $path) or fail("cannot write $path: $!");
    print $fh $text;
    close($fh) or fail("cannot write $path: $!");
}

sub rotate {
    # A rerun (e.g. a resumed training) keeps the earlier logs: x.log -> x.1.log, x.1.log -> x.2.log, ...
    my ($path) = @_;
    return unless -s $path;
    (my $stem = $path) =~ s/\.log$//;
    my $n = 1;
    $n++ while -e "$stem.$n.log";
    for (my $i = $n; $i > 1; $i--) { rename("$stem." . ($i - 1) . ".log", "$stem.$i.log") or fail("cannot rotate $path: $!") }
    rename($path, "$stem.1.log") or fail("cannot rotate $path: $!");
}

my (%running, %started, @failed);
my $stop_signal;
for my $sig (qw(INT TERM HUP)) {
    $SIG{$sig} = sub {
        $stop_signal //= $sig;
        kill 'TERM', map { -$_ } keys %running;
    };
}

sub reap_one {
    my $pid = waitpid(-1, 0);
    return if $pid <= 0 || !exists $running{$pid};
    my $status = $?;
    my $id = delete $running{$pid};
    my $code = $status & 127 ? 128 + ($status & 127) : $status >> 8;
    my $elapsed = time() - $started{$id};
    append_to(substituted($logfile, $id),
        "# Accounting: time=$elapsed threads=$opt{num_threads}\n"
        . "# Ended (code $code) at " . now() . ", elapsed time $elapsed seconds\n", '>>');
    push @failed, $id if $code != 0;
}

my $host = hostname();
my $runner = $$;

sub supervise {
    # The job's first process: runs the command in this process group and waits for it. A job must not outlive
    # its runner (as with Kaldi's run.pl, whose jobs share its process group): when run.pl goes away, even by
    # SIGKILL, this stops the job's whole process group (TERM, then KILL after 10 s).
    my ($log, $cmd, $runner) = @_;
    my $job = fork() // POSIX::_exit(127);
    if ($job == 0) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
        open(STDOUT, '>>', $log) or POSIX::_exit(127);
        open(STDERR, '>&', \*STDOUT) or POSIX::_exit(127);
        exec('bash', '-c', $cmd) or do { print STDERR "run.pl: cannot run bash: $!\n"; POSIX::_exit(127) };
    }
    $SIG{$_} = 'IGNORE' for qw(INT TERM HUP);  # run.pl's TERM to the group is for the job; this waits for it
    my $orphaned_at;
    while (1) {
        my $done = waitpid($job, POSIX::WNOHANG());
        if ($done == $job) {
            my $status = $?;
            POSIX::_exit($status & 127 ? 128 + ($status & 127) : $status >> 8);
        }
        if (getppid() != $runner) {
            if (!defined $orphaned_at) {
                $orphaned_at = time();
                if (open(my $fh, '>>', $log)) { print $fh "# run.pl went away: stopping the job\n"; close($fh) }
                kill 'TERM', -$$;
            } elsif (time() - $orphaned_at >= 10) {
                kill 'KILL', $job, -$$;
            }
        }
        select(undef, undef, undef, 0.2);
    }
}
for my $id ($first .. $last) {
    reap_one() while keys %running >= $max_jobs && !defined $stop_signal;
    last if defined $stop_signal;
    my $log = substituted($logfile, $id);
    my $cmd = substituted($command, $id);
    my $dir = dirname($log);
    make_path($dir) unless -d $dir;
    rotate($log);
    append_to($log, "# $cmd\n# Started at " . now() . " on $host\n#\n", '>');
    $started{$id} = time();
    my $pid = fork() // fail("cannot fork: $!");
    if ($pid == 0) {
        # Own process group, so that an interrupted run.pl can stop the whole pipeline of a job.
        setpgrp(0, 0);
        supervise($log, $cmd, $runner);
    }
    setpgrp($pid, $pid);
    $running{$pid} = $id;
}
reap_one() while keys %running;

my $num_jobs = $last - $first + 1;
if (defined $stop_signal) {
    print STDERR "run.pl: stopped by SIG$stop_signal; logs are in " . substituted($logfile, '*') . "\n";
    exit 1;
}
if (@failed) {
    @failed = sort { $a <=> $b } @failed;
    print STDERR "run.pl: " . scalar(@failed) . " / $num_jobs failed, log is in " . substituted($logfile, $failed[0]) . "\n";
    if (@failed > 1) {
        my @shown = @failed > 10 ? (@failed[0 .. 9], '...') : @failed;
        print STDERR "run.pl: failed jobs: @shown\n";
    }
    exit 1;
}
exit 0;
