#!/usr/bin/perl
# Cancellation by /cancel and by client disconnect (the sequence and its
# KV blocks are freed: /health shows it), and concurrent requests that
# share engine steps (their tokens interleave in time).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use StarlingTest;

StarlingTest::require_nginx();

my $t = StarlingTest->new->start;

sub idle_health {
    my $deadline = time + 5;
    my $h;
    while (time < $deadline) {
        $h = $t->request('GET', '/health')->{json};
        return $h if $h->{active_sequences} == 0 && $h->{queued_sequences} == 0
                     && $h->{live_requests} == 0
                     && $h->{kv_blocks_free} == $h->{kv_blocks_total};
        sleep 0.05;
    }
    return $h;
}

my $long = { prompt => 'Once upon a time', max_tokens => 1500,
             temperature => 0, ignore_eos => JSON::PP::true };

# --- /cancel -------------------------------------------------------------
my $s = $t->stream_open('/execute', { %$long, job_id => 'c1' });
my @ev;
while (my $e = $s->next_event(10)) {
    push @ev, $e;
    last if grep({ ($_->{event} // '') eq 'token' } @ev) >= 3;
}
is($ev[0]{event}, 'started', 'stream started');

my $mid = $t->request('GET', '/health')->{json};
ok($mid->{active_sequences} + $mid->{queued_sequences} >= 1, 'a sequence is active during the stream');
ok($mid->{kv_blocks_free} < $mid->{kv_blocks_total}, 'it holds KV blocks');

my $r = $t->request('POST', '/cancel', { job_id => 'c1' });
is($r->{status}, 200, '/cancel 200');
is($r->{json}{status}, 'cancelling', 'job found');

while (my $e = $s->next_event(10)) { push @ev, $e; }
$s->close;
is($ev[-1]{event}, 'end', 'stream ends with end');
is($ev[-1]{json}{stop_reason}, 'CANCELLED', 'stop_reason CANCELLED');
ok($ev[-1]{json}{tokens_out} < 1500, 'stopped early');
is(scalar(grep { ($_->{event} // '') =~ /^(end|error)$/ } @ev), 1, 'one terminal event');

$r = $t->request('POST', '/cancel', { job_id => 'c1' });
is($r->{status}, 200, '/cancel again: 200 (idempotent)');
is($r->{json}{status}, 'not_found', '... job is gone');
$r = $t->request('POST', '/cancel', {});
is($r->{status}, 400, '/cancel without job_id: 400');

my $h = idle_health();
is($h->{active_sequences}, 0, 'after cancel: no active sequence');
is($h->{kv_blocks_free}, $h->{kv_blocks_total}, 'after cancel: all KV blocks free');

# --- client disconnect -------------------------------------------------------
for my $path ('/execute', '/v1/completions') {
    my $body = $path eq '/execute' ? { %$long, job_id => 'd1' }
                                   : { %$long, stream => JSON::PP::true };
    $s = $t->stream_open($path, $body);
    my $n = 0;
    while (my $e = $s->next_event(10)) {
        last if ++$n >= 4;
    }
    ok($n >= 4, "$path: streaming");
    $s->close;
    $h = idle_health();
    is($h->{active_sequences}, 0, "$path: disconnect frees the sequence");
    is($h->{kv_blocks_free}, $h->{kv_blocks_total}, "$path: ... and its KV blocks");
    is($h->{live_requests}, 0, "$path: ... and the module's request");
}

# --- concurrency: two streams share steps ---------------------------------------
my @s = map { $t->stream_open('/execute', { %$long, max_tokens => 1000, job_id => "p$_" }) } (1, 2);
my @evs = ([], []);
for my $i (0, 1) {
    while (my $e = $s[$i]->next_event(10)) {
        push @{$evs[$i]}, $e;
        last if grep({ ($_->{event} // '') eq 'token' } @{$evs[$i]}) >= 3;
    }
}
$mid = $t->request('GET', '/health')->{json};
is($mid->{active_sequences}, 2, 'both sequences active at once');
for my $i (0, 1) {
    while (my $e = $s[$i]->next_event(20)) { push @{$evs[$i]}, $e; }
    $s[$i]->close;
}
for my $i (0, 1) {
    is(scalar(grep { ($_->{event} // '') eq 'token' } @{$evs[$i]}), 1000, "stream $i: 1000 tokens");
}
# generation intervals from the server's own figures: [started_at, +decode]
my @iv = map {
    my ($st) = grep { ($_->{event} // '') eq 'started' } @{$evs[$_]};
    my ($mt) = grep { ($_->{event} // '') eq 'metrics' } @{$evs[$_]};
    [ $st->{json}{started_at}, $st->{json}{started_at} + $mt->{json}{decode_time_ms} ];
} (0, 1);
ok($iv[1][0] < $iv[0][1] && $iv[0][0] < $iv[1][1],
   'the two generations overlap in time (not queued whole behind each other)')
    or diag explain \@iv;

$h = idle_health();
is($h->{kv_blocks_free}, $h->{kv_blocks_total}, 'all KV blocks free at the end');

$t->stop;
like($t->access_log, qr/" 499 /, 'disconnects logged as 499');
$t->check_error_log;

done_testing();
