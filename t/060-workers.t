#!/usr/bin/perl
# Two workers: counters aggregate in shared memory, /cancel and job_id
# uniqueness work whichever worker answers; /ready speaks for every
# worker of the running configuration (also across a reload); a model
# that fails to load leaves the worker up, answering 503, and makes the
# other worker's /ready 503 too.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use Digest::SHA qw(sha256_hex);
use StarlingTest;

StarlingTest::require_nginx();

# reuseport: each worker has its own listening socket and the kernel
# spreads connections over them, so both workers answer; every reply
# says which worker sent it (X-Worker-Pid, and /health's worker_pid)
my $t = StarlingTest->new(workers => 2, listen => 'reuseport',
                          server => <<'EOF3')->start;
        add_header X-Worker-Pid $pid always;
        location /v1/ { starling openai; }
        location / { starling worker; }
EOF3

# every worker must be ready (each loads the models itself): loop until
# both pids answered /health with the model loaded
my (%health, $pid_mismatch);
for (1 .. 400) {
    my $r = $t->request('GET', '/health');
    next unless $r && $r->{json} && $r->{json}{model_loaded};
    my $pid = $r->{json}{worker_pid} // 'none';
    $pid_mismatch++ if $pid ne ($r->{headers}{'x-worker-pid'} // '');
    $health{$pid}++;
    last if keys %health >= 2;
    sleep 0.01;
}
my @pids = sort keys %health;
is(scalar(grep { /^\d+$/ } @pids), 2, 'both workers answered /health')
    or diag("worker_pid values seen: @pids");
ok(!$pid_mismatch, "/health's worker_pid is the answering process");
if (@pids != 2) {
    # nothing below would prove anything across workers
    $t->stop;
    done_testing();
    exit;
}

# /ready: the instance, whichever worker answers
my %ready_by_pid;
for (1 .. 100) {
    my $r = $t->request('GET', '/ready');
    $ready_by_pid{$r->{headers}{'x-worker-pid'}} = $r;
    last if keys %ready_by_pid >= 2;
}
is(scalar(keys %ready_by_pid), 2, '/ready answered by both workers');
for my $pid (sort keys %ready_by_pid) {
    my $r = $ready_by_pid{$pid};
    is($r->{status}, 200, "worker $pid: ready");
    is_deeply($r->{json}{workers}, { ready => 2, total => 2 },
              "worker $pid: counts both workers");
}

for my $i (1 .. 6) {
    $t->request('POST', '/v1/completions', { prompt => 'Once', max_tokens => 2 });
}
my (%ok_by_pid);
for (1 .. 200) {
    my $r = $t->request('GET', '/metrics');
    my ($ok) = $r->{body} =~ /^starling_requests_total\{outcome="ok"\} (\d+)$/m;
    push @{$ok_by_pid{$r->{headers}{'x-worker-pid'}}}, $ok;
    last if keys %ok_by_pid >= 2 && $_ >= 10;
}
is(scalar(keys %ok_by_pid), 2, '/metrics answered by both workers');
my %values = map { $_ => 1 } map { @$_ } values %ok_by_pid;
is_deeply([ keys %values ], [ 6 ], 'every worker reports the same, summed counters');

# a keep-alive connection to a worker other than $not (same worker for
# every request on it)
sub conn_to_other {
    my ($not) = @_;
    for (1 .. 100) {
        my $s = $t->connect_server or next;
        my $r = $t->request_on($s, 'GET', '/health');
        return ($s, $r->{json}{worker_pid})
            if $r && $r->{json} && $r->{json}{worker_pid} != $not;
        close $s;
    }
    return;
}

my $long = { prompt => 'Once upon a time', max_tokens => 1900,
             temperature => 0, ignore_eos => JSON::PP::true };

for my $round (1 .. 3) {
    my $s = $t->stream_open('/execute', { %$long, job_id => "w$round" });
    my @ev;
    while (my $e = $s->next_event(10)) {
        push @ev, $e;
        last if @ev >= 3;
    }
    my $owner = $s->{headers}{'x-worker-pid'};
    ok($owner, "round $round: the job runs on worker $owner");
    my ($c, $other) = conn_to_other($owner);
    ok($c, "round $round: a connection to the other worker ($other)")
        or last;
    my $dup = $t->request_on($c, 'POST', '/execute', { %$long, job_id => "w$round" });
    is($dup->{status}, 409, "round $round: duplicate job_id 409 from the other worker");
    is($dup->{headers}{'x-worker-pid'}, $other, '... answered by it');
    my $can = $t->request_on($c, 'POST', '/cancel', { job_id => "w$round" });
    is($can->{json}{status}, 'cancelling', "round $round: /cancel on the other worker finds the job");
    is($can->{headers}{'x-worker-pid'}, $other, '... answered by it');
    close $c;
    while (my $e = $s->next_event(10)) { push @ev, $e; }
    $s->close;
    is($ev[-1]{json}{stop_reason}, 'CANCELLED', "round $round: cancelled on its owner");
}

# reload while an old worker still streams: the new configuration's two
# workers are what /ready counts, the draining one is not
{
    my $s = $t->stream_open('/execute', { %$long, job_id => 'rl' });
    my @ev;
    while (my $e = $s->next_event(10)) {
        push @ev, $e;
        last if @ev >= 3;
    }
    my $old = $s->{headers}{'x-worker-pid'};
    $t->signal('reload');
    my ($r, %seen);
    my $deadline = time + 20;
    while (time < $deadline) {
        $r = $t->request('GET', '/ready');
        my $pid = $r && $r->{headers}{'x-worker-pid'};
        $seen{$pid} = 1 if $r && $r->{status} == 200 && $pid ne $old
                           && !$ready_by_pid{$pid};
        last if keys %seen >= 2;
        sleep 0.05;
    }
    is(scalar(keys %seen), 2, 'after reload: both new workers answer ready');
    is_deeply($r->{json}{workers}, { ready => 2, total => 2 },
              '... counting the new workers only');
    ok(kill(0, $old), '... while the old worker still streams');
    $t->request('POST', '/cancel', { job_id => 'rl' });
    while (my $e = $s->next_event(20)) { push @ev, $e; }
    $s->close;
    is($ev[-1]{event}, 'end', 'the old worker\'s stream ended normally');
}

$t->stop;
$t->check_error_log;

# --- a model that fails to load: the worker stays, answering 503 ---------
# nginx -t (and so start-up) checks the file and its sha256, so the
# failure has to come after it: the file is replaced by a different one
# (rename: the running worker keeps its mapping) and the worker is
# killed; the master starts a new one from the same configuration, and
# that one cannot load the file.
my $good = do {
    open my $mf, '<:raw', StarlingTest::root() . '/models/stories260K.gguf'
        or die "model: $!";
    local $/;
    <$mf>;
};
my $bad = StarlingTest->new(workers => 2, listen => 'reuseport',
    http => "    starling_model tiny "
    . "path={{PREFIX}}/model.gguf sha256=" . sha256_hex($good) . ";\n",
    server => <<'EOF4');
        add_header X-Worker-Pid $pid always;
        location /v1/ { starling openai; }
        location / { starling worker; }
EOF4
{
    open my $mf, '>:raw', "$bad->{prefix}/model.gguf" or die $!;
    print $mf $good;
    close $mf;
}
$bad->start;
{
    open my $mf, '>:raw', "$bad->{prefix}/model.tmp" or die $!;
    print $mf substr($good, 0, length($good) - 1) . 'x';
    close $mf;
    rename "$bad->{prefix}/model.tmp", "$bad->{prefix}/model.gguf" or die $!;
}
my $old_worker = $bad->request('GET', '/health')->{json}{worker_pid};
kill 'KILL', $old_worker;
my $r;
my $deadline = time + 10;
do {
    $r = $bad->request('GET', '/health');
    sleep 0.05 unless $r && $r->{json} && ($r->{json}{status} // '') eq 'error';
} while (time < $deadline
         && !($r && $r->{json} && ($r->{json}{status} // '') eq 'error'));
is($r->{status}, 503, 'health 503 when the model failed');
is($r->{json}{status}, 'error', 'status error');
ok(!$r->{json}{model_loaded}, 'model_loaded false');
my $failed = $r->{json}{worker_pid};
$r = $bad->request('POST', '/v1/completions', { prompt => 'x' });
my $n = 0;
while ($r->{headers}{'x-worker-pid'} != $failed && $n++ < 100) {
    $r = $bad->request('POST', '/v1/completions', { prompt => 'x' });
}
is($r->{status}, 503, 'completions 503 on the failed worker');
is($r->{json}{error}{code}, 'model_failed', '... model_failed');

# the healthy worker still serves, but the instance is not ready
my ($healthy_ready, $failed_ready);
for (1 .. 200) {
    $r = $bad->request('GET', '/ready');
    next unless $r;
    if ($r->{headers}{'x-worker-pid'} == $failed) {
        $failed_ready //= $r;
    } else {
        $healthy_ready //= $r;
    }
    last if $healthy_ready && $failed_ready;
}
for ([ 'failed', $failed_ready ], [ 'healthy', $healthy_ready ]) {
    my ($which, $rr) = @$_;
    ok($rr, "/ready answered by the $which worker") or next;
    is($rr->{status}, 503, "... 503 from the $which worker");
    ok($rr->{headers}{'retry-after'}, '... with Retry-After');
    is_deeply($rr->{json}{workers}, { ready => 1, total => 2 },
              '... one of two workers ready');
}
is($healthy_ready && $healthy_ready->{json}{models}{tiny}, 'ready',
   'the healthy worker reports its own model loaded');
$bad->stop;
like($bad->error_log, qr/model "tiny" .* failed to load: .*sha256/i, 'load failure logged with the reason');

done_testing();
