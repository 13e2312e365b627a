#!/usr/bin/perl
# Prompts of 1 KiB and more are tokenized on the model's thread pool, not
# in the event loop (ngx_http_starling_generate.c): the same ids, hence
# the same completion, as the prompt given as token ids (which skips
# tokenization) or as /tokenize counts; chat prompts alike; a client that
# leaves while its prompt is tokenized leaves nothing behind.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use StarlingTest qw(json_decode);

StarlingTest::require_nginx();

my $t = StarlingTest->new(http => <<'EOF2', server => <<'EOF3')->start;
    starling_model q8 path={{MODELQ8}};
    starling_model cml path={{MODELQ8}} chat_template=chatml;
EOF2
        location /v1/ { starling openai; }
        location / { starling worker; }
EOF3

my $story = 'Once upon a time, there was a little girl named Lily. She loved '
          . 'to play outside in the park with her dog, Max. ';
my $text = $story x (int(1500 / length($story)) + 1);
cmp_ok(length $text, '>=', 1024, 'the prompt is over the inline limit (1 KiB)');

my $tk = $t->request('POST', '/tokenize', { model => 'q8', content => $text });
is($tk->{status}, 200, '/tokenize 200');
my $ids = $tk->{json}{tokens};
ok(@$ids > 100, scalar(@$ids) . ' prompt tokens');

my %gen = (model => 'q8', max_tokens => 12, temperature => 0);
my $a = $t->request('POST', '/v1/completions', { %gen, prompt => $text });
is($a->{status}, 200, 'long text prompt: 200') or diag($a->{body});
is($a->{json}{usage}{prompt_tokens}, scalar @$ids,
   'prompt_tokens == /tokenize count');
my $b = $t->request('POST', '/v1/completions', { %gen, prompt => $ids });
is($b->{status}, 200, 'the same prompt as ids: 200') or diag($b->{body});
ok(length $a->{json}{choices}[0]{text}, 'a completion');
is($a->{json}{choices}[0]{text}, $b->{json}{choices}[0]{text},
   'the same completion as from the ids');

# streamed, on the worker API
my $e = $t->request('POST', '/execute', { job_id => 'long-1', prompt => $text, max_tokens => 4,
                                          temperature => 0 });
is($e->{status}, 200, '/execute with a long prompt: 200');
like($e->{body}, qr/event: end/, '... ends normally');

# chat: the rendered prompt is over the limit too
my $msgs = [ { role => 'user', content => $text } ];
my $c = $t->request('POST', '/v1/chat/completions',
                    { model => 'cml', messages => $msgs, max_tokens => 4,
                      temperature => 0 });
is($c->{status}, 200, 'long chat: 200') or diag($c->{body});
my $ap = $t->request('POST', '/v1/apply-template',
                     { model => 'cml', messages => $msgs });
is($c->{json}{usage}{prompt_tokens}, $ap->{json}{n_tokens},
   'chat prompt_tokens == the rendered prompt\'s');

# over the context: the usual 400, after tokenizing on the pool
my $big = $t->request('POST', '/v1/completions',
                      { model => 'q8', prompt => $story x 200, max_tokens => 1 });
is($big->{status}, 400, 'a prompt over the context: 400');
is($big->{json}{error}{code}, 'context_length_exceeded', '... context_length_exceeded');

# clients that close right after sending a long prompt
for my $i (1 .. 4) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $t->{port}) or die "connect: $!";
    my $body = StarlingTest::json_encode({ %gen, prompt => $text, stream => JSON::PP::true() });
    print $s "POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
           . "Content-Type: application/json\r\nContent-Length: "
           . length($body) . "\r\n\r\n$body";
    close $s;
}
my $h = $t->request('GET', '/health');
is($h->{status}, 200, '/health answers after the abandoned requests');
my $again = $t->request('POST', '/v1/completions', { %gen, prompt => $text });
is($again->{json}{choices}[0]{text}, $a->{json}{choices}[0]{text},
   'the long prompt again: the same completion');

$t->check_error_log;
done_testing();
