#!/usr/bin/perl
# Model lifecycle: nginx -s reload with a changed starling_model path
# switches the model (new workers load the new file) while the old worker
# finishes its open stream on the old one; /v1/models lists every model
# with its metadata and state; each load leaves one summary line in
# error.log.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use StarlingTest;

StarlingTest::require_nginx();

my $t = StarlingTest->new(http => <<'EOF2')->start;
    starling_model tiny path={{MODEL260K}};
    starling_model other path={{MODEL260K}};
EOF2

my $r = $t->request('GET', '/v1/models');
is($r->{status}, 200, '/v1/models');
my @m = @{$r->{json}{data}};
is_deeply([ map { $_->{id} } @m ], [ 'tiny', 'other' ], 'every model listed');
for my $x (@m) {
    ok($x->{loaded}, "$x->{id}: loaded");
    is($x->{state}, 'ready', "$x->{id}: state");
    is($x->{arch}, 'llama', "$x->{id}: arch");
    is(uc $x->{type}, 'F32', "$x->{id}: type");
    is($x->{backend}, 'cpu', "$x->{id}: backend");
    is($x->{vocab_size}, 512, "$x->{id}: vocab");
    ok($x->{context_length} > 0 && $x->{n_params} > 0, "$x->{id}: context and size");
}

my $old_pid = $t->request('GET', '/health')->{json}{worker_pid};

# a stream on the old model, then the configuration points "tiny" at
# another file
my $s = $t->stream_open('/execute', { job_id => 'old', prompt => 'Once upon a time',
                                      max_tokens => 400, temperature => 0,
                                      ignore_eos => JSON::PP::true });
my @ev;
while (my $e = $s->next_event(10)) { push @ev, $e; last if @ev >= 3; }
is($ev[0]{event}, 'started', 'stream started on the old model');

$t->{http} = "    starling_model tiny path={{MODELQ8}};\n"
           . "    starling_model other path={{MODEL260K}};\n";
$t->write_conf;
$t->signal('reload');

# the new worker serves the new file
my $new;
for (1 .. 400) {
    $r = $t->request('GET', '/v1/models');
    my ($tiny) = grep { $_->{id} eq 'tiny' } @{$r->{json}{data} // []};
    if ($tiny && $tiny->{loaded} && $tiny->{type} eq 'Q8_0') { $new = $tiny; last; }
    sleep 0.02;
}
ok($new, 'after the reload "tiny" is the Q8_0 file');
# (while the old worker closes its listening socket, a connection may
# still reach it: ask until the new one answers)
my $h;
for (1 .. 400) {
    $h = $t->request('GET', '/health')->{json};
    last if $h && ($h->{quant_kind} // '') eq 'Q8_0';
    sleep 0.02;
}
isnt($h->{worker_pid}, $old_pid, '... in a new worker');
isnt($new->{vocab_size}, 512, '... with its own vocabulary') if $new;

# meanwhile the old stream goes on in the old worker, on the old model
while (my $e = $s->next_event(30)) { push @ev, $e; }
$s->close;
is($ev[-1]{event}, 'end', 'the old stream ends normally');
is($ev[-1]{json}{tokens_out}, 400, '... with every token');
is($ev[-1]{json}{stop_reason}, 'MAX_TOKENS', '... stop_reason');
my @ids = map { $_->{json}{id} } grep { $_->{event} eq 'token' } @ev;
ok(!grep({ $_ >= 512 } @ids), '... all ids from the old vocabulary (512)');

$r = $t->request('POST', '/v1/completions', { model => 'tiny', prompt => 'Once',
                                              max_tokens => 3 });
is($r->{status}, 200, 'new requests are served');

$t->stop;
my $log = $t->error_log;
my @loads = $log =~ /starling: model "tiny" loaded in \d+ ms: llama (\S+),/g;
is_deeply([ map { uc } @loads ], [ 'F32', 'Q8_0' ], 'one load summary line per load, old then new');
my @starts = $log =~ /starling: model "tiny" loading from "([^"]+)"/g;
is(scalar(@starts), 2, 'a "loading" line before each load');
like($starts[1] // '', qr/TinyStories-656K-Q8_0\.gguf$/, '... naming the new file');
$t->check_error_log;

done_testing();
