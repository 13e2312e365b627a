#!/usr/bin/perl
# Two workers: counters aggregate in shared memory, /cancel and job_id
# uniqueness work whichever worker answers; a model that fails to load
# leaves the worker up, answering 503.

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
my $bad = StarlingTest->new(http => "    starling_model tiny "
    . "path={{PREFIX}}/model.gguf sha256=" . sha256_hex($good) . ";\n");
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
$r = $bad->request('GET', '/ready');
is($r->{status}, 503, 'ready 503');
ok($r->{headers}{'retry-after'}, 'Retry-After');
$r = $bad->request('POST', '/v1/completions', { prompt => 'x' });
is($r->{status}, 503, 'completions 503');
is($r->{json}{error}{code}, 'model_failed', '... model_failed');
$bad->stop;
like($bad->error_log, qr/model "tiny" .* failed to load: .*sha256/i, 'load failure logged with the reason');

done_testing();
