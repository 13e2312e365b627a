#!/usr/bin/perl
# /cancel of a job whose generation is already over, while its output is
# still being delivered to a slow client, says "finished" (not
# "cancelling": nothing is cancelled, and the stream ends with its real
# stop reason). Found by the soak: a job cancelled after its last token
# was generated ran to MAX_TOKENS after a "cancelling" reply.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use StarlingTest;

StarlingTest::require_nginx();

# two workers (reuseport): the /cancel lands on the job's worker or on the
# other one, which finds the job through the shared registry
my $t = StarlingTest->new(workers => 2, listen => 'reuseport',
                          http => <<'EOF2')->start;
    starling_model tiny path={{MODEL260K}} threads=1;
EOF2

my %seen;
for my $round (1 .. 8) {
    my $id = "done$round";
    # the client reads nothing until the engine is done with the job
    my $s = $t->stream_open('/execute', { job_id => $id, prompt => 'Once',
                            max_tokens => 200,
                            ignore_eos => JSON::PP::true });
    # idle: the latest /health of each of the two workers says so
    my %idle;
    my $deadline = time + 30;
    while (time < $deadline) {
        my $h = $t->request('GET', '/health')->{json} or next;
        $idle{$h->{worker_pid} // 0} = ($h->{active_sequences} // 1) == 0
                                       && ($h->{queued_sequences} // 1) == 0;
        last if keys %idle >= 2 && !grep { !$_ } values %idle;
        sleep 0.02;
    }
    ok(keys(%idle) >= 2 && !(grep { !$_ } values %idle),
       "round $round: both workers idle (the engine finished the job)");
    my $c = $t->request('POST', '/cancel', { job_id => $id });
    my $status = $c->{json}{status} // '';
    my $last;
    while (my $e = $s->next_event(10)) {
        $last = $e;
        last if ($e->{event} // '') =~ /^(end|error)$/;
    }
    my $sr = $last && $last->{json} ? $last->{json}{stop_reason} // '' : '';
    $s->close;
    $seen{$status}++;
    # a reply never promises what does not happen: "cancelling" ends
    # CANCELLED (the worker still held output it had not taken), anything
    # else ends with the job's real stop reason
    ok(($status eq 'cancelling' && $sr eq 'CANCELLED')
       || ($status =~ /^(finished|not_found)$/ && $sr eq 'MAX_TOKENS'),
       "round $round: /cancel said '$status', the stream ended $sr");
}
note(join ', ', map { "$_ x$seen{$_}" } sort keys %seen);

$t->check_error_log;
done_testing();
