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

my $t = StarlingTest->new(workers => 2)->start;

# every worker must be ready (each loads the models itself)
my $ready = 0;
for (1 .. 200) {
    $ready++ if $t->request('GET', '/ready')->{status} == 200;
    last if $ready >= 20;
    sleep 0.02;
}

for my $i (1 .. 6) {
    $t->request('POST', '/v1/completions', { prompt => 'Once', max_tokens => 2 });
}
my %seen;
for (1 .. 10) {
    my $m = $t->request('GET', '/metrics')->{body};
    my ($ok) = $m =~ /^starling_requests_total\{outcome="ok"\} (\d+)$/m;
    $seen{$ok}++;
}
is_deeply([ keys %seen ], [ 6 ], 'every worker reports the same, summed counters');

my $long = { prompt => 'Once upon a time', max_tokens => 1900,
             temperature => 0, ignore_eos => JSON::PP::true };

for my $round (1 .. 3) {
    my $s = $t->stream_open('/execute', { %$long, job_id => "w$round" });
    my @ev;
    while (my $e = $s->next_event(10)) {
        push @ev, $e;
        last if @ev >= 3;
    }
    my $dup = $t->request('POST', '/execute', { %$long, job_id => "w$round" });
    is($dup->{status}, 409, "round $round: duplicate job_id 409 (any worker)");
    my $c = $t->request('POST', '/cancel', { job_id => "w$round" });
    is($c->{json}{status}, 'cancelling', "round $round: /cancel finds the job");
    while (my $e = $s->next_event(10)) { push @ev, $e; }
    $s->close;
    is($ev[-1]{json}{stop_reason}, 'CANCELLED', "round $round: cancelled");
}

$t->stop;
$t->check_error_log;

# --- a model that fails to load: the worker stays, answering 503 ---------
my $bad = StarlingTest->new(http => <<'EOF2');
    starling_model tiny path={{MODEL260K}} sha256=0000000000000000000000000000000000000000000000000000000000000000;
EOF2
$bad->start(no_wait => 1);
my $r;
my $deadline = time + 10;
do {
    $r = $bad->request('GET', '/health');
    sleep 0.05 unless $r && $r->{json} && $r->{json}{status} eq 'error';
} while (time < $deadline && !($r && $r->{json} && $r->{json}{status} eq 'error'));
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
