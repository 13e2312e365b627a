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

my $t = StarlingTest->new(workers => 2, listen => 'reuseport',
                          http => <<'EOF2')->start;
    starling_model tiny path={{MODEL260K}} threads=1;
EOF2

for my $round (1 .. 3) {
    my $id = "done$round";
    # the client reads nothing until the engine is done with the job
    my $s = $t->stream_open('/execute', { job_id => $id, prompt => 'Once',
                            max_tokens => 200,
                            ignore_eos => JSON::PP::true });
    my ($idle, $deadline) = (0, time + 30);
    while (time < $deadline) {
        my @h = map { $t->request('GET', '/health')->{json} } 1 .. 4;
        $idle = !grep { !$_ || ($_->{active_sequences} // 1) != 0
                        || ($_->{queued_sequences} // 0) != 0 } @h;
        last if $idle;
        sleep 0.02;
    }
    ok($idle, "round $round: the engine finished the job");
    my $c = $t->request('POST', '/cancel', { job_id => $id });
    like($c->{json}{status} // '', qr/^(finished|not_found)$/,
         "round $round: /cancel after the last token says finished "
         . "(or not_found once delivered): " . ($c->{json}{status} // ''));
    my $last;
    while (my $e = $s->next_event(10)) {
        $last = $e;
        last if ($e->{event} // '') =~ /^(end|error)$/;
    }
    is($last && $last->{json} ? $last->{json}{stop_reason} : '', 'MAX_TOKENS',
       "round $round: the stream ends with its real stop reason");
    $s->close;
}

$t->check_error_log;
done_testing();
