#!/usr/bin/perl
# nginx -s reload and -s quit during a stream: the old worker finishes
# the open stream (its timer keeps it alive), new workers load the model.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use StarlingTest;

StarlingTest::require_nginx();

my $t = StarlingTest->new->start;

my $long = { prompt => 'Once upon a time', max_tokens => 1500,
             temperature => 0, ignore_eos => JSON::PP::true };

for my $sig ('reload', 'quit') {
    my $s = $t->stream_open('/execute', { %$long, job_id => "r-$sig" });
    my @ev;
    while (my $e = $s->next_event(10)) {
        push @ev, $e;
        last if @ev >= 3;
    }
    $t->signal($sig);
    while (my $e = $s->next_event(20)) { push @ev, $e; }
    $s->close;

    is($ev[-1]{event}, 'end', "$sig: the stream ends normally");
    is($ev[-1]{json}{tokens_out}, 1500, "$sig: all tokens delivered");
    is($ev[-1]{json}{stop_reason}, 'MAX_TOKENS', "$sig: stop_reason");

    if ($sig eq 'reload') {
        my $deadline = time + 10;
        my $r;
        do {
            $r = $t->request('POST', '/v1/completions', { prompt => 'Once', max_tokens => 3 });
            sleep 0.05 unless $r && $r->{status} == 200;
        } while (time < $deadline && !($r && $r->{status} == 200));
        is($r->{status}, 200, 'new workers serve after reload');
    }
}

# quit: wait for the master to exit
my $pid = $t->pid;
my $deadline = time + 10;
sleep 0.05 while $pid && kill(0, $pid) && time < $deadline;
ok(!($pid && kill(0, $pid)), 'nginx exited after quit');
$t->{started} = 0;

like($t->error_log, qr/gracefully shutting down/, 'graceful shutdown logged');
$t->check_error_log;

done_testing();
