#!/usr/bin/perl
# Continuous batching through nginx: 16 concurrent streams overlap in time
# and each produces exactly the tokens of its solo run (same seed => same
# bytes under any load); a shared system prompt is served from the prefix
# cache on the second request and reported as cached_tokens.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use StarlingTest;

StarlingTest::require_nginx();

my $t = StarlingTest->new(http => <<'EOF2', server => <<'EOF3')->start;
    starling_model tiny path={{MODEL260K}} max_seqs=16 threads=1;
    log_format cached '$request_uri cached=$starling_cached_tokens';
    access_log {{PREFIX}}/logs/cached.log cached;
EOF2
        location /v1/ { starling openai; }
        location / { starling worker; }
EOF3

my @words = qw(Lily Tom Sue Ben Max Anna the a big little red happy dog cat ball tree);
my @jobs;
for my $i (0 .. 15) {
    my $prompt = "Once upon a time, " . join(' ', @words[0 .. ($i % 8) + 2])
               . ($i % 2 ? ' went to the park.' : ' saw');
    push @jobs, { prompt => $prompt, max_tokens => 600 + 10 * $i,
                  temperature => ($i % 3 ? 0.8 : 0), seed => 1000 + $i,
                  ignore_eos => JSON::PP::true };
}

sub ids_of {
    my ($events) = @_;
    return join ' ', map { $_->{json}{id} }
                     grep { ($_->{event} // '') eq 'token' } @$events;
}

# solo runs, one at a time
my @solo;
for my $i (0 .. 15) {
    my ($status, undef, $ev) = $t->stream('/execute',
                                          { %{$jobs[$i]}, job_id => "solo$i" });
    is($status, 200, "solo $i: 200");
    push @solo, ids_of($ev);
}

# the same 16 at once
# connect all 16 first, then send the 16 requests back to back, so they
# reach the server within a few milliseconds of each other
my @socks = map { $t->connect_server or die "connect: $!" } 0 .. 15;
for my $i (0 .. 15) {
    my $sock = $socks[$i];
    print $sock $t->build_request('POST', '/execute',
                                  { %{$jobs[$i]}, job_id => "conc$i" });
}
my @st = map { StarlingTest::Stream->new($_) } @socks;
my (@first, @last);
my $deadline = time + 60;
while (time < $deadline) {
    my $live = 0;
    for my $i (0 .. 15) {
        my $s = $st[$i];
        next if $s->{finished};
        $live++;
        1 while $s->fill(0);                # take what has arrived, no wait
        while (my $e = $s->next_event(0)) {
            if (($e->{event} // '') eq 'token') {
                $first[$i] //= $e->{t};
                $last[$i] = $e->{t};
            }
            if (($e->{event} // '') =~ /^(end|error)$/) {
                $s->{finished} = 1;
                last;
            }
        }
        $s->{finished} = 1 if $s->{done} || $s->{eof};
    }
    last unless $live;
    select(undef, undef, undef, 0.001);
}
my $all_equal = 1;
for my $i (0 .. 15) {
    $st[$i]->close;
    my $got = ids_of($st[$i]{events});
    $all_equal &&= ($got eq $solo[$i] && length $got);
    is($got, $solo[$i], "stream $i: same token ids as its solo run");
}
my ($max_first) = sort { $b <=> $a } grep defined, @first;
my ($min_last) = sort { $a <=> $b } grep defined, @last;
ok(defined $max_first && defined $min_last && $max_first < $min_last,
   'all 16 streams were generating at the same time (every first token '
   . 'came before any stream\'s last token)');

my $h = $t->request('GET', '/health')->{json};
is($h->{active_sequences}, 0, 'no sequence left active');
is($h->{kv_blocks_free}, $h->{kv_blocks_total}, 'every KV block available');

# prefix cache: a shared system prompt
my $sys = 'You are a storyteller. Once upon a time, there was a little girl '
        . 'named Lily. She loved to play outside in the park with her dog.';
my $r1 = $t->request('POST', '/v1/chat/completions', {
    messages => [ { role => 'system', content => $sys },
                  { role => 'user', content => 'Tell me about the dog.' } ],
    max_tokens => 8, temperature => 0 });
is($r1->{status}, 200, 'chat 1: 200');
my $r2 = $t->request('POST', '/v1/chat/completions', {
    messages => [ { role => 'system', content => $sys },
                  { role => 'user', content => 'Tell me about the park.' } ],
    max_tokens => 8, temperature => 0 });
is($r2->{status}, 200, 'chat 2: 200');
my $c1 = $r1->{json}{usage}{prompt_tokens_details}{cached_tokens} // -1;
my $c2 = $r2->{json}{usage}{prompt_tokens_details}{cached_tokens} // -1;
is($c1, 0, 'first request: nothing cached');
cmp_ok($c2, '>=', 32, "second request: shared system prompt cached ($c2 tokens)");
# the log phase runs after the reply is sent: wait for both lines
my @chat_lines;
my $log_deadline = time + 10;
while (time < $log_deadline) {
    open my $fh, '<', "$t->{prefix}/logs/cached.log" or die "cached.log: $!";
    @chat_lines = grep { m{^/v1/chat/completions } } <$fh>;
    chomp @chat_lines;
    last if @chat_lines >= 2;
    select(undef, undef, undef, 0.02);
}
is(scalar @chat_lines, 2, 'access log: both chat requests logged');
like($chat_lines[0] // '', qr/ cached=0$/, '$starling_cached_tokens: 0 for the first');
like($chat_lines[1] // '', qr/ cached=\Q$c2\E$/,
     "\$starling_cached_tokens: $c2 for the second");

$t->check_error_log;
done_testing();
