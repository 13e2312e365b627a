#!/usr/bin/perl
# POST …/apply-template: a chat body rendered with the model's template,
# no generation; the same prompt /v1/chat/completions runs.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StarlingTest qw(json_decode);

StarlingTest::require_nginx();

my $t = StarlingTest->new(http => <<'EOF2', server => <<'EOF3')->start;
    starling_model tiny path={{MODEL260K}};
    starling_model cml path={{MODEL260K}} chat_template=chatml;
EOF2
        location /v1/ { starling openai; }
        location = /tmpl { starling apply_template; }
        location / { starling worker; }
EOF3

my $msgs = [ { role => 'system', content => 'Be brief.' },
             { role => 'user', content => 'Hi there' } ];

my $r = $t->request('POST', '/v1/apply-template',
                    { model => 'cml', messages => $msgs });
is($r->{status}, 200, 'apply-template 200');
my $j = $r->{json};
is($j->{object}, 'chat.template', 'object');
is($j->{prompt}, "<|im_start|>system\nBe brief.<|im_end|>\n"
                 . "<|im_start|>user\nHi there<|im_end|>\n"
                 . "<|im_start|>assistant\n", 'exact ChatML prompt');
is($j->{n_tokens}, scalar @{$j->{tokens}}, 'n_tokens');
ok(grep({ $_ eq '<|im_end|>' } @{$j->{stop}}), 'the family stops on <|im_end|>');

my $tk = $t->request('POST', '/tokenize', { model => 'cml', content => $j->{prompt} });
is_deeply($j->{tokens}, $tk->{json}{tokens}, 'tokens == /tokenize of the prompt');

my $c = $t->request('POST', '/v1/chat/completions',
                    { model => 'cml', messages => $msgs, max_tokens => 1 });
is($c->{json}{usage}{prompt_tokens}, $j->{n_tokens},
   'chat completions runs that prompt (same token count)');

$r = $t->request('POST', '/tmpl', { model => 'tiny', messages => $msgs });
is($r->{status}, 200, 'one-endpoint location: 200');
ok(length $r->{json}{prompt}, 'a prompt for the default family');

$r = $t->request('POST', '/v1/apply-template', { model => 'cml' });
is($r->{status}, 400, 'no messages: 400');
is($r->{json}{error}{param}, 'messages', '... OpenAI error naming messages');
$r = $t->request('POST', '/v1/apply-template', { model => 'nope', messages => $msgs });
is($r->{status}, 404, 'unknown model: 404');
$r = $t->request('GET', '/v1/apply-template');
is($r->{status}, 405, 'GET: 405');

# --- tools: rendered into the prompt, the history accepted -------------------
my $tools = [ { type => 'function',
                function => { name => 'get_weather', description => 'Get weather',
                              parameters => { type => 'object',
                                              properties => { city => { type => 'string' } } } } } ];
$r = $t->request('POST', '/v1/apply-template',
    { model => 'cml', tools => $tools,
      messages => [ { role => 'user', content => 'Weather in Paris?' },
                    { role => 'assistant', content => undef,
                      tool_calls => [ { id => 'call_1', type => 'function',
                                        function => { name => 'get_weather',
                                                      arguments => '{"city":"Paris"}' } } ] },
                    { role => 'tool', tool_call_id => 'call_1', content => '22C' } ] });
is($r->{status}, 200, 'tools: 200');
my $p = $r->{json}{prompt} // '';
like($p, qr/^<\|im_start\|>system\n# Tools\n\nYou may call one or more functions/,
     'tool block in the system turn');
like($p, qr/<tools>\n\{[^\n]*"name": "get_weather", "parameters": \{"properties": [^\n]*\}\n<\/tools>/,
     'the tool as tojson prints it, in the order sent');
like($p, qr/<\|im_start\|>assistant\n<tool_call>\n\{"name": "get_weather", "arguments": \{"city": "Paris"\}\}\n<\/tool_call><\|im_end\|>\n/,
     'the assistant call in the history');
like($p, qr/<\|im_start\|>user\n<tool_response>\n22C\n<\/tool_response><\|im_end\|>\n<\|im_start\|>assistant\n$/,
     'the tool result as a user turn');

$r = $t->request('POST', '/v1/apply-template',
    { model => 'cml', tools => $tools, tool_choice => 'none',
      messages => [ { role => 'user', content => 'x' } ] });
unlike($r->{json}{prompt}, qr/# Tools/, 'tool_choice none: no tool block');

# a model that writes no call: plain content, streamed == not streamed
my $body = { model => 'cml', tools => $tools, max_tokens => 12, temperature => 0,
             messages => [ { role => 'user', content => 'Tell me a story' } ] };
$c = $t->request('POST', '/v1/chat/completions', $body);
is($c->{status}, 200, 'chat with tools: 200');
ok(!exists $c->{json}{choices}[0]{message}{tool_calls}, 'no call written: no tool_calls');
my ($st, $h, $ev) = $t->stream('/v1/chat/completions', { %$body, stream => JSON::PP::true });
my $text = join '', map { $_->{json}{choices}[0]{delta}{content} // '' }
                    grep { $_->{json} && @{$_->{json}{choices}} } @$ev;
is($text, $c->{json}{choices}[0]{message}{content}, 'streamed content == non-streamed');

$r = $t->request('POST', '/v1/chat/completions',
    { model => 'cml', tools => $tools, tool_choice => { type => 'function', function => { name => 'nope' } },
      messages => [ { role => 'user', content => 'x' } ] });
is($r->{status}, 400, 'tool_choice naming an unknown function: 400');
$r = $t->request('POST', '/v1/chat/completions',
    { model => 'cml', messages => [ { role => 'tool', content => 'x' } ] });
is($r->{status}, 200, 'a tool turn without tools: rendered as a tool result');

# --- required / named: enforced by constrained decoding ----------------------
my $etools = [ { type => 'function',
                 function => { name => 'get_weather',
                               parameters => { type => 'object',
                                               properties => { city => { type => 'string', enum => [ 'Paris', 'Rome' ] } },
                                               required => [ 'city' ], additionalProperties => JSON::PP::false } } },
               { type => 'function',
                 function => { name => 'get_time', parameters => { type => 'object', properties => {},
                                                                   additionalProperties => JSON::PP::false } } } ];
# (the tiny model spends a token per character, whitespace included)
my $forced = { model => 'cml', tools => $etools, max_tokens => 400, temperature => 1, seed => 3,
               tool_choice => { type => 'function', function => { name => 'get_weather' } },
               messages => [ { role => 'user', content => 'Weather in Paris?' } ] };
$c = $t->request('POST', '/v1/chat/completions', $forced);
is($c->{status}, 200, 'named tool_choice: 200');
my $m = $c->{json}{choices}[0]{message};
is($c->{json}{choices}[0]{finish_reason}, 'tool_calls', 'finish_reason tool_calls');
is($m->{content}, undef, 'content null');
is($m->{tool_calls}[0]{type}, 'function', 'a function call');
is($m->{tool_calls}[0]{function}{name}, 'get_weather', 'the named function');
my $args = json_decode($m->{tool_calls}[0]{function}{arguments});
ok($args && ($args->{city} // '') =~ /^(Paris|Rome)$/, 'arguments: JSON valid for the schema')
    or diag($m->{tool_calls}[0]{function}{arguments});
like($m->{tool_calls}[0]{id}, qr/^call_/, 'call id');

($st, $h, $ev) = $t->stream('/v1/chat/completions', { %$forced, stream => JSON::PP::true });
my ($name, $sargs, $fin, $id) = ('', '', '', '');
for my $e (@$ev) {
    next unless $e->{json} && @{$e->{json}{choices}};
    my $ch = $e->{json}{choices}[0];
    $fin = $ch->{finish_reason} if $ch->{finish_reason};
    for my $tc (@{$ch->{delta}{tool_calls} // []}) {
        $id = $tc->{id} if $tc->{id};
        $name .= $tc->{function}{name} // '';
        $sargs .= $tc->{function}{arguments} // '';
    }
}
is($name, 'get_weather', 'stream: the name in a delta');
is($sargs, $m->{tool_calls}[0]{function}{arguments}, 'stream: arguments reassembled == non-streamed');
is($fin, 'tool_calls', 'stream: finish_reason tool_calls');

$c = $t->request('POST', '/v1/chat/completions', { %$forced, tool_choice => 'required', seed => 4 });
like($c->{json}{choices}[0]{message}{tool_calls}[0]{function}{name}, qr/^get_(weather|time)$/,
     'required: a call to one of the tools');

$c = $t->request('POST', '/v1/chat/completions', { %$forced, n => 3 });
is(scalar(grep { ($_->{finish_reason} // '') eq 'tool_calls' } @{$c->{json}{choices}}), 3,
   'n=3: every choice a call');

$r = $t->request('POST', '/v1/responses',
    { model => 'cml', input => 'Weather?', tool_choice => 'required', max_output_tokens => 400,
      tools => [ { type => 'function', name => 'get_weather',
                   parameters => $etools->[0]{function}{parameters} } ] });
my ($fc) = grep { $_->{type} eq 'function_call' } @{$r->{json}{output} // []};
is($fc->{name}, 'get_weather', 'responses, required: a function_call item');
ok(json_decode($fc->{arguments} // ''), '... with JSON arguments');

$r = $t->request('POST', '/v1/chat/completions',
    { %$forced, tools => [ { type => 'function', function => { name => 'get_weather',
                             parameters => { type => 'object', patternProperties => {} } } } ] });
is($r->{status}, 400, 'a parameters schema the decoder cannot compile: 400');
like($r->{json}{error}{message}, qr/patternProperties/, '... naming the keyword');

$t->stop;
$t->check_error_log;
done_testing();
